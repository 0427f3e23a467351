import assert from 'node:assert/strict';
import { writeFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { LocalStorage } from '../../src/storage/local-storage.ts';
import { tempDir } from '../support/tmp.ts';
import { storageContract } from './storage-contract.ts';

storageContract('LocalStorage', async () => new LocalStorage(tempDir('ls')));

test('LocalStorage.putFile moves a complete file into place and leaves no temporary names', async () => {
  const dir = tempDir('ls');
  const s = new LocalStorage(`${dir}/root`);
  writeFileSync(`${dir}/spooled`, 'payload');
  await s.putFile('tbl/dt=2026-01-01/f.parquet', `${dir}/spooled`);
  assert.equal((await s.get('tbl/dt=2026-01-01/f.parquet'))!.toString(), 'payload');
  assert.deepEqual(readdirSync(`${dir}/root/tbl/dt=2026-01-01`), ['f.parquet']);
  assert.deepEqual(readdirSync(dir).sort(), ['root']);
});

test('LocalStorage.list does not report the temporary file a killed write left behind, only real objects (even hidden ones)', async () => {
  const root = tempDir('ls-tmp');
  const s = new LocalStorage(root);
  await s.put('state/consumers/a.json', '{"owner":"a"}');
  // What a process SIGKILLed inside put() leaves: its temporary name, possibly empty.
  writeFileSync(`${root}/state/consumers/.b.json.12345.0a1b2c3d.tmp`, '');
  writeFileSync(`${root}/state/consumers/.hidden.json`, '{}');
  assert.deepEqual((await s.list('state/consumers')).map((o) => o.key), ['state/consumers/.hidden.json', 'state/consumers/a.json']);
  assert.equal(readdirSync(`${root}/state/consumers`).length, 3);
});
