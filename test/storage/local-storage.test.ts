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
