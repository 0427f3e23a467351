/**
 * Queries over an S3 lake (s3rver) fetch only the column chunks of the columns a statement refers
 * to, into partial copies kept in the file cache: the same answers as whole files (and as the raw
 * input), a fraction of the bytes, grown when a later statement needs more columns, reused by the
 * next query, counted by the blocks they use.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { EmbeddedCatalog } from '../../src/catalog/embedded-catalog.ts';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { LakeQuery, queryLive } from '../../src/query/lake-query.ts';
import { LocalLog, LocalLogSource } from '../../src/source/local-log.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { FileCache } from '../../src/storage/file-cache.ts';
import { S3Storage } from '../../src/storage/s3-storage.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { FOOTER_INITIAL_FETCH } from '../../src/writer/parquet-footer.ts';
import { countingParquetReads } from '../support/counting-storage.ts';
import { oracleEvents } from '../support/ground-truth.ts';
import { rerunWithOpenSslLegacyProviderIfNeeded, startS3rverLake } from '../support/s3rver.ts';

rerunWithOpenSslLegacyProviderIfNeeded();

let lake: Awaited<ReturnType<typeof startS3rverLake>> | undefined;
after(() => lake?.close());
let dir: string;
let storage: S3Storage;
let lines: string[];
before(async () => {
  lake = await startS3rverLake('projection');
  ({ dir, storage } = lake);
  lines = [...sampleLines({ count: 100_000, seed: 41, padToBytes: 1000, invalidRate: 0.01 })];
  writeFileSync(`${dir}/in.ndjson`, lines.join('\n') + '\n');
  await new Ingestor(storage, new EmbeddedCatalog(storage)).run(new FileSource([`${dir}/in.ndjson`]));
});

let caches = 0;
const newCache = (s: Storage = storage, at = `${dir}/cache-${++caches}`) => new FileCache(s, { dir: at });
const tracksFiles = async () => listCommittedFiles(storage, new EmbeddedCatalog(storage), 'tracks');

/** Statements whose answers must not depend on which bytes were fetched. */
const STATEMENTS = [
  'SELECT event, count(*) AS n, count(DISTINCT anonymous_id) AS u FROM tracks GROUP BY 1 ORDER BY 1',
  'SELECT * FROM experiment_results ORDER BY ALL',
  'SELECT count(*), min(dt), max(dt) FROM tracks',
  "SELECT sum(TRY_CAST(properties->>'$.revenue' AS DECIMAL(18, 2))) AS revenue FROM tracks",
  'SELECT count(*) FROM identifies WHERE user_id IN (SELECT user_id FROM tracks)',
  'SELECT t FROM tracks t ORDER BY t.message_id LIMIT 3',
  'SELECT a, b FROM tracks AS x(a, b) ORDER BY a LIMIT 3',
  'SELECT * FROM pages ORDER BY message_id LIMIT 3',
  "SELECT COLUMNS('context_.*') FROM tracks ORDER BY ALL LIMIT 3",
  'SELECT count(*) FROM tracks NATURAL JOIN pages',
  'DESCRIBE tracks',
  "SELECT count(*), count(DISTINCT event) FROM query_table('tracks') WHERE event IS NOT NULL",
];

test('every statement answers as over whole files; a row used as a value, *, positional aliases and the like get every column', async () => {
  const whole = await LakeQuery.open(storage, new EmbeddedCatalog(storage), { projection: false, cache: newCache() });
  const counted = countingParquetReads(storage);
  const some = await LakeQuery.open(counted, new EmbeddedCatalog(counted), { cache: newCache(counted) });
  try {
    for (const sql of STATEMENTS) assert.deepEqual(await some.query(sql), await whole.query(sql), sql);
  } finally {
    whole.close();
    some.close();
  }
});

test('the events per name equal the raw input\'s, from the event and anonymous_id chunks alone', async () => {
  const want = new Map<string, { n: number; ids: Set<string> }>();
  for (const l of lines) {
    for (const { valid, event } of oracleEvents(l)) {
      if (!valid || event!.type !== 'track') continue;
      const e = want.get(event!.event as string) ?? { n: 0, ids: new Set<string>() };
      e.n++;
      if (event!.anonymousId !== undefined && event!.anonymousId !== null) e.ids.add(String(event!.anonymousId));
      want.set(event!.event as string, e);
    }
  }
  const counted = countingParquetReads(storage);
  const q = await LakeQuery.open(counted, new EmbeddedCatalog(counted), { cache: newCache(counted) });
  try {
    const got = await q.query(STATEMENTS[0]!);
    assert.deepEqual(
      got.rows,
      [...want].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([name, e]) => [name, e.n, e.ids.size]),
    );
    const total = (await tracksFiles()).reduce((a, f) => a + f.size, 0);
    assert.ok(counted.parquetBytes > 0 && counted.parquetBytes < total * 0.25, `read ${counted.parquetBytes} of ${total} bytes of tracks`);
  } finally {
    q.close();
  }
});

test('a copy grows when a statement needs more columns; the next query, in a new cache instance, fetches nothing; sizes count blocks', async () => {
  const at = `${dir}/cache-shared`;
  const files = await tracksFiles();
  const total = files.reduce((a, f) => a + f.size, 0);
  const whole = await LakeQuery.open(storage, new EmbeddedCatalog(storage), { projection: false, cache: newCache() });
  const counted = countingParquetReads(storage);
  const cache = newCache(counted, at);
  const q = await LakeQuery.open(counted, new EmbeddedCatalog(counted), { cache });
  try {
    const ab = 'SELECT * FROM experiment_results ORDER BY ALL';
    assert.deepEqual(await q.query(ab), await whole.query(ab));
    const first = counted.parquetBytes;
    assert.ok(first > 0 && first < total * 0.25, `the A/B view read ${first} of ${total} bytes`);
    // More columns of the same files: only theirs are fetched, and the copies are made anew with both.
    const more = 'SELECT count(user_id), count(context_ip), max(received_at) FROM tracks';
    assert.deepEqual(await q.query(more), await whole.query(more));
    assert.ok(counted.parquetBytes > first && counted.parquetBytes - first < total * 0.25, `then read ${counted.parquetBytes - first} more`);
    assert.deepEqual(await q.query(ab), await whole.query(ab), 'the first statement again, over the grown copies');
  } finally {
    q.close();
  }
  const parts = (d: string): string[] =>
    readdirSync(d, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && /\.p[0-9a-f]{16}\.parquet$/.test(e.name))
      .map((e) => path.join(e.parentPath, e.name));
  const copies = parts(at).filter((p) => p.includes(`${path.sep}tracks${path.sep}`));
  assert.equal(copies.length, files.length, 'one partial copy per tracks file: the smaller ones were replaced');
  const usage = await cache.usage();
  assert.ok(usage.bytes < total * 0.5, `the cache counts ${usage.bytes} bytes for copies of ${total} bytes of objects`);

  // A new process's cache over the same directory: both statements from the copies, nothing fetched.
  const again = countingParquetReads(storage);
  const q2 = await LakeQuery.open(again, new EmbeddedCatalog(again), { cache: newCache(again, at) });
  try {
    assert.deepEqual(await q2.query('SELECT * FROM experiment_results ORDER BY ALL'), await whole.query('SELECT * FROM experiment_results ORDER BY ALL'));
    assert.deepEqual(await q2.query('SELECT count(context_ip) FROM tracks'), await whole.query('SELECT count(context_ip) FROM tracks'));
    assert.equal(again.parquetBytes, 0);
    // A statement needing every column fetches the files whole; the partial copies then go.
    assert.deepEqual(await q2.query('SELECT * FROM tracks ORDER BY message_id LIMIT 2'), await whole.query('SELECT * FROM tracks ORDER BY message_id LIMIT 2'));
    assert.ok(again.parquetBytes >= total - 0, `fetched ${again.parquetBytes} of ${total}`);
  } finally {
    q2.close();
    whole.close();
  }
  assert.deepEqual(parts(at).filter((p) => p.includes(`${path.sep}tracks${path.sep}`)), [], 'whole copies replaced the partial ones');
});

test('a filter on a partition column fetches the columns of the partitions it keeps only; the others give their footer', async () => {
  const files = await tracksFiles();
  const dayOf = (key: string) => /\/dt=(\d{4}-\d{2}-\d{2})\//.exec(key)![1]!;
  const days = [...new Set(files.map((f) => dayOf(f.key)))].sort();
  assert.ok(days.length >= 3 && files.every((f) => f.size > 2 * 1024 * 1024), `${days.length} days, files of ${files.map((f) => f.size)} bytes`);
  // Ground truth: distinct message ids per event and receivedAt day, from the raw lines.
  const want = new Map<string, Set<string>>();
  for (const l of lines) {
    for (const { valid, event } of oracleEvents(l)) {
      if (!valid || event!.type !== 'track') continue;
      const k = `${new Date(String(event!.receivedAt)).toISOString().slice(0, 10)}|${event!.event}`;
      want.set(k, (want.get(k) ?? new Set()).add(String(event!.messageId)));
    }
  }
  const expect = (keep: (day: string) => boolean) => {
    const per = new Map<string, number>();
    for (const [k, ids] of want) if (keep(k.slice(0, 10))) per.set(k.slice(11), (per.get(k.slice(11)) ?? 0) + ids.size);
    return [...per].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  };
  const perEvent = (where: string) => `SELECT event, count(DISTINCT message_id) AS n FROM tracks ${where} GROUP BY 1 ORDER BY 1`;
  const at = `${dir}/cache-pruned`;
  const counted = countingParquetReads(storage);
  const q = await LakeQuery.open(counted, new EmbeddedCatalog(counted), { cache: newCache(counted, at) });
  /** Per day, the columns the cached copies of its tracks file hold. */
  const held = () => {
    const out: Record<string, string[][]> = {};
    for (const e of readdirSync(at, { recursive: true, withFileTypes: true })) {
      if (!e.isFile() || !e.name.endsWith('.parts') || !e.parentPath.includes(`${path.sep}tracks${path.sep}`)) continue;
      const { names } = JSON.parse(readFileSync(path.join(e.parentPath, e.name), 'utf8')) as { names: string[] };
      (out[dayOf(path.join(e.parentPath, '/'))] ??= []).push(names);
    }
    return out;
  };
  try {
    assert.deepEqual((await q.query(perEvent(`WHERE dt = DATE '${days[1]}'`))).rows, expect((d) => d === days[1]));
    assert.deepEqual(held(), Object.fromEntries(days.map((d) => [d, [d === days[1] ? ['event', 'message_id'] : []]])));
    for (const f of files) {
      const read = counted.perKey.get(f.key) ?? 0;
      if (dayOf(f.key) === days[1]) assert.ok(read > FOOTER_INITIAL_FETCH, `${f.key}: ${read} bytes`);
      else assert.ok(read <= FOOTER_INITIAL_FETCH + 4, `${f.key} is pruned, yet ${read} bytes of it were read`);
    }
    // A later statement keeping more partitions fills those; one without a filter, the rest.
    assert.deepEqual((await q.query(perEvent(`WHERE dt >= DATE '${days[1]}'`))).rows, expect((d) => d >= days[1]!));
    assert.deepEqual(held()[days[0]!], [[]]);
    assert.deepEqual((await q.query(perEvent(''))).rows, expect(() => true));
    assert.deepEqual(held(), Object.fromEntries(days.map((d) => [d, [['event', 'message_id']]])));
  } finally {
    q.close();
  }
});

test('a statement that cannot run fetches no column; a plan holding an infinite constant still prunes', async () => {
  const files = await tracksFiles();
  const days = [...new Set(files.map((f) => /\/dt=([^/]+)\//.exec(f.key)![1]!))].sort();
  const counted = countingParquetReads(storage);
  const at = `${dir}/cache-typos`;
  const q = await LakeQuery.open(counted, new EmbeddedCatalog(counted), { cache: newCache(counted, at) });
  const whole = await LakeQuery.open(storage, new EmbeddedCatalog(storage), { projection: false, cache: newCache() });
  try {
    await assert.rejects(q.query('SELEC count(*) FROM tracks'), /syntax error/);
    assert.equal(counted.parquetBytes, 0, 'a syntax error reads nothing');
    await assert.rejects(q.query(`SELECT count(evnt) FROM tracks WHERE dt = DATE '${days[1]}'`), /evnt/);
    for (const f of files) assert.ok((counted.perKey.get(f.key) ?? 0) <= FOOTER_INITIAL_FETCH + 4, `${f.key}: ${counted.perKey.get(f.key)} bytes for a misspelt column`);
    // 1/0 is folded to Infinity, which DuckDB's plan JSON writes bare.
    const sql = `SELECT count(DISTINCT message_id), max(1/0) FROM tracks WHERE dt = DATE '${days[1]}'`;
    assert.deepEqual(await q.query(sql), await whole.query(sql));
    const withColumns = readdirSync(at, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.parts') && e.parentPath.includes(`${path.sep}tracks${path.sep}`))
      .filter((e) => (JSON.parse(readFileSync(path.join(e.parentPath, e.name), 'utf8')) as { names: string[] }).names.length > 0);
    assert.equal(withColumns.length, 1, 'only the day kept holds columns');
  } finally {
    q.close();
    whole.close();
  }
});

test('a statement that reads a file its plan did not show is run again with every file filled (a safety net)', async () => {
  const whole = await LakeQuery.open(storage, new EmbeddedCatalog(storage), { projection: false, cache: newCache() });
  const q = await LakeQuery.open(storage, new EmbeddedCatalog(storage), { cache: newCache() });
  // As if the plan had shown no file: every copy holds its footer only when the statement runs.
  (q as unknown as { fillPlanned: () => Promise<void> }).fillPlanned = async () => {};
  try {
    const sql = 'SELECT event, count(DISTINCT message_id), max(received_at) FROM tracks GROUP BY 1 ORDER BY 1';
    const got = await q.query(sql);
    assert.ok(got.rows.length >= 3, JSON.stringify(got.rows));
    assert.deepEqual(got, await whole.query(sql));
  } finally {
    q.close();
    whole.close();
  }
});

test('projection: false, or a local lake, reads whole files as before', async () => {
  const counted = countingParquetReads(storage);
  const q = await LakeQuery.open(counted, new EmbeddedCatalog(counted), { projection: false, cache: newCache(counted) });
  try {
    await q.query('SELECT count(event) FROM tracks');
    assert.equal(counted.parquetBytes, (await tracksFiles()).reduce((a, f) => a + f.size, 0));
  } finally {
    q.close();
  }
});

test('a live query over an S3 lake: the committed files\' column chunks ∪ the rows not flushed yet, exactly', async () => {
  const catalog = new EmbeddedCatalog(storage);
  const before = await LakeQuery.open(storage, catalog, { builtinViews: false, cache: newCache() });
  const committed = Number((await before.query('SELECT count(*) FROM tracks')).rows[0]![0]);
  before.close();
  const logDir = `${dir}/log`;
  const log = await LocalLog.open(logDir);
  const ac = new AbortController();
  const ingestor = new Ingestor(storage, catalog, { maxFileAgeMs: 3_600_000, signal: ac.signal, decodeWorkers: 1 });
  const running = ingestor.run(new LocalLogSource(logDir, { log, signal: ac.signal }));
  try {
    const more = [...sampleLines({ count: 2_000, seed: 8, padToBytes: 1000 })];
    const liveTracks = more.flatMap(oracleEvents).filter((e) => e.valid && e.event!.type === 'track').length;
    await log.append(more);
    const count = 'SELECT count(*), count(DISTINCT message_id) FROM tracks';
    let n = 0;
    for (let i = 0; i < 200 && n !== committed + liveTracks; i++) {
      n = Number((await queryLive(storage, catalog, ingestor, count, { builtinViews: false, cache: newCache() })).rows[0]![0]);
      if (n !== committed + liveTracks) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(n, committed + liveTracks, 'committed rows and live rows, each once');
    const at = `${dir}/cache-live`;
    for (const sql of [count, 'SELECT count(*) FROM tracks', STATEMENTS[0]!, 'SELECT * FROM experiment_results ORDER BY ALL', 'SELECT t FROM tracks t ORDER BY t.message_id LIMIT 2']) {
      const counted = countingParquetReads(storage);
      const got = await queryLive(counted, new EmbeddedCatalog(counted), ingestor, sql, { cache: newCache(counted, at) });
      assert.deepEqual(got, await queryLive(storage, catalog, ingestor, sql, { projection: false, cache: newCache() }), sql);
    }
    // With a filter on one day: the live rows still count, and the committed files of other days give their footer only.
    const days = [...new Set((await tracksFiles()).map((f) => /\/dt=([^/]+)\//.exec(f.key)![1]!))].sort();
    const oneDay = `SELECT count(*), count(DISTINCT message_id) FROM tracks WHERE dt = DATE '${days[1]}'`;
    const pruned = `${dir}/cache-live-day`;
    assert.deepEqual(await queryLive(storage, catalog, ingestor, oneDay, { cache: newCache(storage, pruned) }), await queryLive(storage, catalog, ingestor, oneDay, { projection: false, cache: newCache() }));
    const held = readdirSync(pruned, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.parts') && e.parentPath.includes(`${path.sep}tracks${path.sep}`))
      .map((e) => [/dt=([^/\\]+)/.exec(e.parentPath)![1], (JSON.parse(readFileSync(path.join(e.parentPath, e.name), 'utf8')) as { names: string[] }).names.length > 0]);
    assert.deepEqual(held.sort(), days.map((d) => [d, d === days[1]]), 'only that day\'s committed file holds columns');
  } finally {
    ac.abort();
    await running;
    await log.close();
  }
});

test('a table bound again for more columns still reads the files its first statement read (a table is read as of that statement)', async () => {
  const catalog = new EmbeddedCatalog(storage);
  const q = await LakeQuery.open(storage, catalog, { builtinViews: false, cache: newCache() });
  try {
    const n = Number((await q.query('SELECT count(event) FROM tracks')).rows[0]![0]);
    writeFileSync(`${dir}/later.ndjson`, [...sampleLines({ count: 3_000, seed: 9, padToBytes: 1000 })].join('\n') + '\n');
    await new Ingestor(storage, catalog).run(new FileSource([`${dir}/later.ndjson`]));
    const fresh = await LakeQuery.open(storage, catalog, { builtinViews: false, cache: newCache() });
    try {
      assert.ok(Number((await fresh.query('SELECT count(event) FROM tracks')).rows[0]![0]) > n, 'the lake has more tracks now');
    } finally {
      fresh.close();
    }
    // user_id was not exposed yet: tracks is bound again, over the same files.
    assert.equal(Number((await q.query('SELECT count(*) FROM tracks WHERE user_id IS NULL OR user_id IS NOT NULL')).rows[0]![0]), n);
  } finally {
    q.close();
  }
});
