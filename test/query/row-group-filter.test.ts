/**
 * Row-group pruning of S3 queries: the filters DuckDB pushes into a scan, judged against each row
 * group's statistics, decide which row groups' chunks are fetched. Unit tests over DuckDB's own
 * serialized filters and footers, then an S3 lake (s3rver) whose tracks files hold many row groups:
 * a query on one event fetches the row groups that can hold it, and answers as the raw input does.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { parquetMetadata, type FileMetaData } from 'hyparquet';
import { EmbeddedCatalog } from '../../src/catalog/embedded-catalog.ts';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { rowGroupsMatching, scanFilters } from '../../src/query/row-group-filter.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { FileCache } from '../../src/storage/file-cache.ts';
import type { S3Storage } from '../../src/storage/s3-storage.ts';
import { countingParquetReads } from '../support/counting-storage.ts';
import { oracleEvents } from '../support/ground-truth.ts';
import { rerunWithOpenSslLegacyProviderIfNeeded, startS3rverLake } from '../support/s3rver.ts';

rerunWithOpenSslLegacyProviderIfNeeded();

let lake: Awaited<ReturnType<typeof startS3rverLake>> | undefined;
after(() => lake?.close());
let dir: string;
let storage: S3Storage;
let lines: string[];
let db: DuckDBInstance;
let conn: DuckDBConnection;
/** Rows per row group of the rewritten tracks files. */
const GROUP = 2048;

before(async () => {
  lake = await startS3rverLake('rowgroups');
  ({ dir, storage } = lake);
  lines = [...sampleLines({ count: 100_000, seed: 5, padToBytes: 1000 })];
  writeFileSync(`${dir}/in.ndjson`, lines.join('\n') + '\n');
  const catalog = new EmbeddedCatalog(storage);
  await new Ingestor(storage, catalog).run(new FileSource([`${dir}/in.ndjson`]));
  db = await DuckDBInstance.create(':memory:');
  conn = await db.connect();
  // Ingest cuts row groups of 64 MiB of events; these files are smaller, so rewrite each tracks file
  // (same rows, same order: event, then received_at) with many row groups, at the same key.
  for (const f of await listCommittedFiles(storage, catalog, 'tracks')) {
    const local = `${dir}/${path.basename(f.key)}`;
    writeFileSync(local, (await storage.get(f.key))!);
    await conn.run(`COPY (SELECT * FROM read_parquet('${local}', hive_partitioning = false)) TO '${local}.rg' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${GROUP})`);
    await storage.put(f.key, readFileSync(`${local}.rg`));
  }
});
after(() => {
  conn?.closeSync();
  db?.closeSync();
});

/** The footer of a local Parquet file. */
function footer(p: string): FileMetaData {
  const b = readFileSync(p);
  return parquetMetadata(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** The filters DuckDB pushes into its scan of `file` for `where`, by column. */
async function filtersOf(file: string, where: string) {
  // sum(n), not count(*): DuckDB counts rows from the statistics alone where they decide the filter.
  const sql = `SELECT sum(n) FROM read_parquet('${file}') WHERE ${where}`;
  const r = await conn.runAndReadAll(`SELECT json_serialize_plan('${sql.replace(/'/g, "''")}', optimize := true)`);
  let get: Record<string, unknown> | undefined;
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      if ((v as { type?: unknown }).type === 'LOGICAL_GET') get = v as Record<string, unknown>;
      Object.values(v).forEach(walk);
    }
  };
  walk(JSON.parse(String(r.getRows()[0]![0])));
  return get === undefined ? undefined : scanFilters(get);
}

test('the row groups a pushed filter may match are those DuckDB reads rows from', async () => {
  const file = `${dir}/unit.parquet`;
  // Sorted text, 8 row groups of 2,048 rows (DuckDB's least): k000 … k007, each group one key; and a number column.
  // A timestamp in milliseconds, as received_at: one second per row, so each group holds 2,048 seconds.
  await conn.run(
    `COPY (SELECT 'k' || lpad((i // 2048)::VARCHAR, 3, '0') AS k, i AS n, (TIMESTAMP '2026-01-01' + to_seconds(i))::TIMESTAMP_MS AS ts FROM range(8 * 2048) r(i) ORDER BY i) TO '${file}' (ROW_GROUP_SIZE 2048)`,
  );
  const meta = footer(file);
  assert.equal(meta.row_groups.length, 8);
  // Ground truth: the row groups holding a matching row, by DuckDB over the rows themselves.
  const truth = async (where: string) =>
    new Set(((await conn.runAndReadAll(`SELECT DISTINCT n // 2048 FROM read_parquet('${file}') WHERE ${where}`)).getRowsJson() as unknown as string[][]).map((r) => Number(r[0])));
  const cases: Array<[string, number[] | 'all']> = [
    ["k = 'k003'", [3]],
    ["k IN ('k001', 'k006')", [1, 6]],
    ["k >= 'k005'", [5, 6, 7]],
    ["k < 'k002'", [0, 1]],
    ["k > 'k003' AND k <= 'k004'", [4]],
    ["k = 'nothing'", []],
    ["k = 'k003' OR n = 7", 'all'], // not pushed into the scan: every row group
    ['n = 7', 'all'], // a number: not judged here, every row group
    ["k <> 'k003'", 'all'],
    ["ts >= TIMESTAMP '2026-01-01 04:00:00'", [7]], // second 14,400
    ["ts < TIMESTAMP '2026-01-01 00:34:08'", [0]], // second 2,048, the first of group 1
    ["ts <= TIMESTAMP '2026-01-01 00:34:08'", [0, 1]],
    ["ts = TIMESTAMP '2026-01-01 01:00:00.001'", [1]], // between rows: the group's range holds it
    ["ts BETWEEN TIMESTAMP '2026-01-01 01:00:00' AND TIMESTAMP '2026-01-01 01:30:00'", [1, 2]],
    ["k = 'k001' AND ts >= TIMESTAMP '2026-01-01 01:00:00'", [1]],
    ['ts >= now() - INTERVAL 1 HOUR', 'all'], // compared WITH TIME ZONE: an expression, not judged
  ];
  for (const [where, want] of cases) {
    const filters = await filtersOf(file, where);
    if (filters === undefined) {
      // DuckDB's optimizer proved the answer empty from the statistics: no scan, no row group read.
      assert.deepEqual([...(await truth(where))], [], `${where}: no scan`);
      continue;
    }
    const got = rowGroupsMatching(meta, filters);
    const expect = want === 'all' ? new Set(meta.row_groups.map((_, i) => i)) : new Set(want);
    assert.deepEqual(got, expect, where);
    // Never less than the row groups that hold a matching row.
    for (const g of await truth(where)) assert.ok(got.has(g), `${where}: row group ${g} holds a match`);
  }
});

test('a query on one event fetches the row groups that can hold it, and answers as the raw input', async () => {
  const files = await listCommittedFiles(storage, new EmbeddedCatalog(storage), 'tracks');
  // Ground truth: distinct message ids per event, from the raw lines.
  const want = new Map<string, Set<string>>();
  for (const l of lines) {
    for (const { valid, event } of oracleEvents(l)) {
      if (valid && event!.type === 'track') want.set(String(event!.event), (want.get(String(event!.event)) ?? new Set()).add(String(event!.messageId)));
    }
  }
  const events = [...want.keys()].sort();
  const rare = events.reduce((a, b) => (want.get(a)!.size <= want.get(b)!.size ? a : b));
  const at = `${dir}/cache`;
  const counted = countingParquetReads(storage);
  const q = await LakeQuery.open(counted, new EmbeddedCatalog(counted), { cache: new FileCache(counted, { dir: at }) });
  /** Per file, the row groups of message_id its cached copy holds (null: all, 'none': only the footer). */
  const heldGroups = () => {
    const out: Array<number[] | null> = [];
    for (const e of readdirSync(at, { recursive: true, withFileTypes: true })) {
      if (!e.isFile() || !e.name.endsWith('.parts') || !e.parentPath.includes(`${path.sep}tracks${path.sep}`)) continue;
      const { names } = JSON.parse(readFileSync(path.join(e.parentPath, e.name), 'utf8')) as { names: string[] };
      out.push(names.includes('message_id') ? null : names.filter((n) => n.startsWith('message_id@')).map((n) => Number(n.slice(11))));
    }
    return out;
  };
  try {
    const one = await q.query(`SELECT count(DISTINCT message_id) FROM tracks WHERE event = '${rare.replace(/'/g, "''")}'`);
    assert.deepEqual(one.rows, [[want.get(rare)!.size]]);
    const total = files.reduce((a, f) => a + f.size, 0);
    const groups = heldGroups();
    assert.equal(groups.length, files.length);
    for (const f of files) assert.ok(footer(`${dir}/${path.basename(f.key)}.rg`).row_groups.length >= 4, `${f.key} has few row groups`);
    // Each file holds the few row groups where the rare event's rows are (sorted by event), not all.
    for (const g of groups) assert.ok(g !== null && g.length < 4, JSON.stringify(groups));
    // Against the same columns of every row group (a new cache): what the statement fetched before row-group pruning.
    const every = countingParquetReads(storage);
    const all0 = await LakeQuery.open(every, new EmbeddedCatalog(every), { cache: new FileCache(every, { dir: `${dir}/cache-all` }) });
    await all0.query('SELECT event, count(DISTINCT message_id) FROM tracks GROUP BY 1');
    all0.close();
    // Row groups of ~200 KB here: the ranges of nearby groups are joined (a request costs more than 512 KiB), so not ~1/7.
    assert.ok(counted.parquetBytes < every.parquetBytes / 3, `read ${counted.parquetBytes} bytes for one event, ${every.parquetBytes} for all (files of ${total})`);

    // An IN list and a range are judged the same way DuckDB judges them: no row group it reads is missing
    // (else the safety net would have filled every file, and the copies would hold message_id whole).
    const two = [...events].sort((a, b) => want.get(a)!.size - want.get(b)!.size).slice(0, 2);
    const inList = await q.query(`SELECT event, count(DISTINCT message_id) FROM tracks WHERE event IN (${two.map((e) => `'${e.replace(/'/g, "''")}'`).join(', ')}) GROUP BY 1 ORDER BY 1`);
    assert.deepEqual(inList.rows, two.sort().map((e) => [e, want.get(e)!.size]));
    const last = events.at(-1)!;
    assert.deepEqual((await q.query(`SELECT count(DISTINCT message_id) FROM tracks WHERE event >= '${last.replace(/'/g, "''")}'`)).rows, [[want.get(last)!.size]]);
    assert.ok(heldGroups().every((g) => g !== null), JSON.stringify(heldGroups()));
    // The last two hours of received_at: rows are ordered by received_at inside each event's run.
    const times = lines.flatMap(oracleEvents).filter((e) => e.valid && e.event!.type === 'track').map((e) => ({ at: Date.parse(String(e.event!.receivedAt)), id: String(e.event!.messageId) }));
    const from = Math.max(...times.map((x) => x.at)) - 2 * 3600_000;
    const recent = new Set(times.filter((x) => x.at >= from).map((x) => x.id)).size;
    const stamp = new Date(from).toISOString().replace('T', ' ').replace('Z', '');
    assert.deepEqual((await q.query(`SELECT count(DISTINCT message_id) FROM tracks WHERE received_at >= TIMESTAMP '${stamp}'`)).rows, [[recent]]);
    assert.ok(heldGroups().every((g) => g !== null), JSON.stringify(heldGroups()));

    // Every event, then no filter: the copies fill to every row group, the answers stay exact.
    for (const e of events) assert.deepEqual((await q.query(`SELECT count(DISTINCT message_id) FROM tracks WHERE event = '${e.replace(/'/g, "''")}'`)).rows, [[want.get(e)!.size]], e);
    const all = await q.query('SELECT event, count(DISTINCT message_id) FROM tracks GROUP BY 1 ORDER BY 1');
    assert.deepEqual(all.rows, events.map((e) => [e, want.get(e)!.size]));
    assert.ok(heldGroups().every((g) => g === null), JSON.stringify(heldGroups()));
  } finally {
    q.close();
  }
});
