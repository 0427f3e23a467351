/** Ingest options: validated at construction (naming the value and the limit), and in effect. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { ConfigError } from '../../src/errors.ts';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { runCli, tempDir } from '../support/tmp.ts';

test('bad options are refused at construction, naming the option, the value and the limit', () => {
  const { storage, catalog } = openLocalLake(`${tempDir('opts')}/lake`);
  const refuses = (o: ConstructorParameters<typeof Ingestor>[2], re: RegExp) =>
    assert.throws(() => new Ingestor(storage, catalog, o), (e: unknown) => e instanceof ConfigError && re.test((e as Error).message));
  refuses({ compressionLevel: 0 }, /compressionLevel: 0 .*from 1 to 22/);
  refuses({ compressionLevel: 23 }, /compressionLevel: 23 .*from 1 to 22/);
  refuses({ compression: 'snappy', compressionLevel: 3 }, /compressionLevel: 3 .*snappy/);
  refuses({ targetFileBytes: 10 }, /targetFileBytes: 10 .*from 1024 bytes/);
  refuses({ maxOpenPartitions: 0 }, /maxOpenPartitions: 0/);
  refuses({ compression: 'gzip' as never }, /compression: "gzip"/);
  refuses({ partitionBy: 'month' }, /partitionBy: "month"/);
  refuses({ closeAfterMs: -1 }, /closeAfterMs: -1 .*from 0 ms/);
});

test('the zstd level is applied: the same rows at level 22 make a smaller file than at level 1; snappy is snappy', async () => {
  const dir = tempDir('zlevel');
  const input = `${dir}/in.ndjson`;
  writeFileSync(input, [...sampleLines({ count: 3_000, seed: 5, padToBytes: 600 })].join('\n') + '\n');
  const sizes: Record<string, number> = {};
  const codecs: Record<string, string[]> = {};
  for (const [name, o] of [
    ['l1', { compressionLevel: 1 }],
    ['l22', { compressionLevel: 22 }],
    ['snappy', { compression: 'snappy' as const }],
  ] as const) {
    const lake = `${dir}/${name}`;
    const { storage, catalog } = openLocalLake(lake);
    await new Ingestor(storage, catalog, o).run(new FileSource([input]));
    const files = await listCommittedFiles(storage, catalog, 'tracks');
    assert.ok(files.length > 0);
    sizes[name] = files.reduce((a, f) => a + f.size, 0);
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const paths = files.map((f) => `'${storage.localPath(f.key)}'`).join(', ');
    const rows = (await conn.runAndReadAll(`SELECT DISTINCT compression FROM parquet_metadata([${paths}])`)).getRows();
    codecs[name] = rows.map((r) => String(r[0]));
    conn.closeSync();
  }
  assert.deepEqual(codecs.l1, ['ZSTD']);
  assert.deepEqual(codecs.l22, ['ZSTD']);
  assert.deepEqual(codecs.snappy, ['SNAPPY']);
  assert.ok(sizes.l22! < sizes.l1!, `level 22 (${sizes.l22} B) smaller than level 1 (${sizes.l1} B)`);
});

test('ingest --compression-level is checked by the CLI (exit 2, naming the flag)', async () => {
  const dir = tempDir('zflag');
  writeFileSync(`${dir}/in.ndjson`, [...sampleLines({ count: 10, seed: 1 })].join('\n') + '\n');
  const bad = await runCli(['ingest', '--lake', `${dir}/lake`, '--compression-level', 'max', `${dir}/in.ndjson`]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--compression-level: "max" is not valid; expected a whole number from 1 to 22/);
  const ok = await runCli(['ingest', '--lake', `${dir}/lake`, '--compression-level', '9', '--json', `${dir}/in.ndjson`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).written, 10);
});
