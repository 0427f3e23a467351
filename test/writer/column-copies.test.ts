/**
 * Column copies on an S3 lake (s3rver): verify and delete-users read only the column chunks they
 * scan (message_id; user_id, anonymous_id, previous_id) with the files' footers, not whole files,
 * and still count exactly: parity, a lost file's rows as missing, a user's rows found and deleted.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { EmbeddedCatalog } from '../../src/catalog/embedded-catalog.ts';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { deleteUsers } from '../../src/compact/delete-users.ts';
import { Ingestor, type IngestStats } from '../../src/ingest/ingestor.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { S3Storage } from '../../src/storage/s3-storage.ts';
import { verifyLake } from '../../src/verify/verify.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { FileCache } from '../../src/storage/file-cache.ts';
import { chunkRanges } from '../../src/writer/column-copies.ts';
import { readParquetFooter, readParquetMetadata } from '../../src/writer/parquet-footer.ts';
import { countingParquetReads } from '../support/counting-storage.ts';
import { rerunWithOpenSslLegacyProviderIfNeeded, startS3rverLake } from '../support/s3rver.ts';

rerunWithOpenSslLegacyProviderIfNeeded();


let lake: Awaited<ReturnType<typeof startS3rverLake>> | undefined;
after(() => lake?.close());
let dir: string;
let storage: S3Storage;
let input: string;
let lines: string[];
let stats: IngestStats;
const lakeBytes = async () => (await Promise.all((await new EmbeddedCatalog(storage).listTables()).map((t) => listCommittedFiles(storage, new EmbeddedCatalog(storage), t.name)))).flat();

before(async () => {
  lake = await startS3rverLake('column-copies');
  ({ dir, storage } = lake);
  process.env.TRIBUTARY_CACHE = `${dir}/cache`; // copies land here, not in the user's cache
  input = `${dir}/in.ndjson`;
  lines = [...sampleLines({ count: 100_000, seed: 97, padToBytes: 1000, invalidRate: 0.01 })];
  writeFileSync(input, lines.join('\n') + '\n');
  stats = await new Ingestor(storage, new EmbeddedCatalog(storage)).run(new FileSource([input]));
});

test('a copy holds the magic, the footer and the chunks of its columns (with their indexes), merged; other columns not', async () => {
  const files = await lakeBytes();
  const f = files.filter((x) => x.key.startsWith('tracks/')).sort((a, b) => b.size - a.size)[0]!;
  const meta = await readParquetMetadata(storage, f.key, f.size);
  const ranges = chunkRanges(meta, new Set(['message_id']), f.size)!;
  assert.deepEqual(ranges[0]!.slice(0, 1), [0]);
  assert.equal(ranges.at(-1)![1], f.size, 'the footer is in');
  for (const rg of meta.row_groups) {
    for (const c of rg.columns) {
      const m = c.meta_data!;
      const start = Number(m.dictionary_page_offset ?? m.data_page_offset);
      const inside = ranges.some(([s, e]) => s <= start && start + Number(m.total_compressed_size) <= e);
      if (m.path_in_schema[0] === 'message_id') assert.ok(inside, 'message_id chunk covered');
      if (m.path_in_schema[0] === 'properties') assert.ok(!inside, 'properties chunk not fetched');
    }
  }
});

test('verify over an S3 lake fetches the message_id chunks, not the files, and counts exactly', async () => {
  const files = await lakeBytes();
  const total = files.reduce((a, f) => a + f.size, 0);
  const counted = countingParquetReads(storage);
  const r = await verifyLake(counted, new EmbeddedCatalog(counted), new FileSource([input]));
  assert.equal(r.parity, true, JSON.stringify(r));
  assert.equal(r.found, stats.written);
  assert.ok(counted.parquetBytes > 0 && counted.parquetBytes < total * 0.25, `read ${counted.parquetBytes} of ${total} bytes of Parquet`);
});

test('LakeQuery with columns: the same answers from column copies as from whole files; other columns are not there to read', async () => {
  const sql = 'SELECT event, experiment_name, count(*) AS n, count(DISTINCT message_id) AS d FROM tracks GROUP BY ALL ORDER BY ALL';
  const whole = await LakeQuery.open(storage, new EmbeddedCatalog(storage), { builtinViews: false, projection: false, cache: new FileCache(storage, { dir: `${dir}/cache-whole` }) });
  const counted = countingParquetReads(storage);
  const some = await LakeQuery.open(counted, new EmbeddedCatalog(counted), { builtinViews: false, columns: ['event', 'experiment_name', 'message_id'], cache: new FileCache(counted, { dir: `${dir}/cache-some` }) });
  try {
    const want = await whole.query(sql);
    assert.ok(want.rows.length > 3);
    assert.deepEqual(await some.query(sql), want);
    const tracks = (await lakeBytes()).filter((f) => f.key.startsWith('tracks/')).reduce((a, f) => a + f.size, 0);
    assert.ok(counted.parquetBytes < tracks * 0.25, `read ${counted.parquetBytes} of ${tracks} bytes`);
    await assert.rejects(some.query('SELECT count(properties) FROM tracks'), /properties/);
  } finally {
    whole.close();
    some.close();
  }
});

test('delete-users over an S3 lake scans the id chunks, fetches only the files that hold the user, and deletes exactly their rows', async () => {
  const events = lines.map((l) => { try { return JSON.parse(l) as { userId?: string; anonymousId?: string; type?: string }; } catch { return {}; } });
  // A user with few events: their rows are in few files.
  const counts = new Map<string, number>();
  for (const e of events) if (typeof e.userId === 'string') counts.set(e.userId, (counts.get(e.userId) ?? 0) + 1);
  const user = [...counts].filter(([, n]) => n >= 5).sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
  const files = await lakeBytes();
  const total = files.reduce((a, f) => a + f.size, 0);
  const counted = countingParquetReads(storage);
  const dry = await deleteUsers(counted, new EmbeddedCatalog(counted), { userIds: [user], dryRun: true });
  const found = Object.values(dry.rows).reduce((a, n) => a + n, 0);
  assert.ok(found > 0, `${user} has rows`);
  assert.ok(counted.parquetBytes < total * 0.25, `the scan read ${counted.parquetBytes} of ${total} bytes of Parquet`);
  const done = await deleteUsers(storage, new EmbeddedCatalog(storage), { userIds: [user] });
  assert.deepEqual(done.rows, dry.rows);
  assert.ok(done.files < files.length / 2, `${done.files} of ${files.length} files rewritten`);
  // verify now finds exactly the user's rows missing (by message_id, through column copies again).
  const after = await verifyLake(storage, new EmbeddedCatalog(storage), new FileSource([input]));
  assert.deepEqual([after.missing, after.extra], [found, 0]);
});

test('verify over column copies counts a lost file\'s rows as missing, exactly', async () => {
  const files = await lakeBytes();
  const before = await verifyLake(storage, new EmbeddedCatalog(storage), new FileSource([input]));
  const lost = files.filter((f) => f.key.startsWith('pages/')).sort((a, b) => b.size - a.size)[0]!;
  const lostRows = (await readParquetFooter(storage, lost.key, lost.size)).rows;
  await storage.delete([lost.key]);
  const after = await verifyLake(storage, new EmbeddedCatalog(storage), new FileSource([input]));
  assert.deepEqual([after.missing - before.missing, after.extra, after.found], [lostRows, 0, before.found - lostRows]);
});
