import assert from 'node:assert/strict';
import { test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { EmbeddedCatalog } from '../../src/catalog/embedded-catalog.ts';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { runMerge } from '../../src/compact/merge.ts';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { S3Storage } from '../../src/storage/s3-storage.ts';
import { rerunWithOpenSslLegacyProviderIfNeeded, s3rverBucket } from '../support/s3rver.ts';
import { countingParquetReads } from '../support/counting-storage.ts';
import { tempDir } from '../support/tmp.ts';

rerunWithOpenSslLegacyProviderIfNeeded();


test('a restart on an S3 lake recovers its marks from merged files\' footers by range reads, without fetching the files', async () => {
  const dir = tempDir('recover');
  const { client, bucket } = await s3rverBucket();
  const storage = new S3Storage({ bucket, client, prefix: 'lake' });
  const catalog = new EmbeddedCatalog(storage);
  const input = `${dir}/in.ndjson`;
  writeFileSync(input, [...sampleLines({ count: 6000, seed: 91, padToBytes: 1000 })].join('\n') + '\n');
  const first = await new Ingestor(storage, catalog, { targetFileBytes: 16 * 1024 }).run(new FileSource([input]));
  assert.equal(first.written, 6000);
  const merged = await runMerge(storage, catalog, { graceMs: 0 });
  assert.ok(merged.merged >= 3);
  const files = (await Promise.all((await catalog.listTables()).map((t) => listCommittedFiles(storage, catalog, t.name)))).flat();
  const total = files.reduce((a, f) => a + f.size, 0);
  assert.ok(files.some((f) => f.key.includes('/m+') && f.size > 128 * 1024), 'merged files larger than a footer read');

  // Re-ingesting the same input: every row is known from the footers, and the files stay where they are.
  const counted = countingParquetReads(storage);
  const again = await new Ingestor(counted, new EmbeddedCatalog(counted), { targetFileBytes: 16 * 1024 }).run(new FileSource([input]));
  assert.deepEqual([again.written, again.skipped], [0, 6000]);
  assert.ok(counted.parquetBytes > 0, 'footers were read');
  for (const f of files) {
    const read = counted.perKey.get(f.key) ?? 0;
    assert.ok(read <= Math.min(f.size, 64 * 1024), `${f.key}: read ${read} of its ${f.size} bytes, at most one 64 KiB footer read`);
    if (!f.key.includes('/m+')) assert.equal(read, 0, `${f.key}: a file of one shard is known by its name`);
  }
  assert.ok(counted.parquetBytes < total / 2, `read ${counted.parquetBytes} of ${total} bytes`);
});
