import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { listJsonInputs } from '../../src/compact/json-to-parquet.ts';
import { InputError } from '../../src/errors.ts';
import { tempDir } from '../support/tmp.ts';

test('raw inputs are found through symbolic links to files and directories, once, with a link cycle walked once', async () => {
  const dir = tempDir('inputs');
  const outside = `${dir}/outside`;
  mkdirSync(`${outside}/day`, { recursive: true });
  writeFileSync(`${outside}/linked.ndjson`, '{}\n');
  writeFileSync(`${outside}/day/part.gz`, 'x');
  const from = `${dir}/from`;
  mkdirSync(`${from}/_hidden`, { recursive: true });
  writeFileSync(`${from}/a.ndjson`, '{}\n{}\n');
  writeFileSync(`${from}/_hidden/skipped.ndjson`, '{}\n');
  writeFileSync(`${from}/notes.txt`, 'not an input');
  symlinkSync(`${outside}/linked.ndjson`, `${from}/b.ndjson`);
  symlinkSync(`${outside}/day`, `${from}/day`);
  symlinkSync(from, `${from}/loop`); // a cycle back to the top
  symlinkSync(`${dir}/nothing`, `${from}/gone.txt`); // dangling, and not named like an input
  const got = await listJsonInputs(from);
  assert.deepEqual(
    got.map((i) => [i.path.slice(from.length + 1), i.bytes]),
    [['a.ndjson', 6], ['b.ndjson', 3], ['day/part.gz', 1]],
  );
});

test('a dangling symbolic link named like an input is an error naming it, not a silent skip', async () => {
  const dir = tempDir('inputs');
  writeFileSync(`${dir}/a.ndjson`, '{}\n');
  symlinkSync(`${dir}/missing.ndjson`, `${dir}/b.ndjson`);
  await assert.rejects(listJsonInputs(dir), (err: unknown) => err instanceof InputError && /b\.ndjson is a symbolic link to nothing/.test((err as Error).message));
});

test('--from may name one file; a missing location is an error naming it', async () => {
  const dir = tempDir('inputs');
  writeFileSync(`${dir}/events.log`, '{}\n');
  assert.deepEqual(await listJsonInputs(`${dir}/events.log`), [{ path: `${dir}/events.log`, bytes: 3 }]);
  await assert.rejects(listJsonInputs(`${dir}/nope`), (err: unknown) => err instanceof InputError && (err as Error).message.includes(`cannot read ${dir}/nope`));
});
