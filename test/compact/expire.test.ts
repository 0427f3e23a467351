import assert from 'node:assert/strict';
import { test } from 'node:test';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { FileSource } from '../../src/source/file-source.ts';
import type { RecordBatch, Source } from '../../src/source/source.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { expirePartitions, expiryCutoff } from '../../src/compact/expire.ts';
import { runMerge } from '../../src/compact/merge.ts';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { verifyLake } from '../../src/verify/verify.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { runCli, tempDir } from '../support/tmp.ts';

const TABLE: Record<string, string> = { track: 'tracks', page: 'pages', screen: 'screens', identify: 'identifies', group: 'groups', alias: 'aliases' };

/** Rows per table and receivedAt day, from the raw lines by DuckDB's JSON reader (not the project's decoder). */
async function truthByDay(file: string): Promise<Record<string, Record<string, number>>> {
  const db = await (await DuckDBInstance.create(':memory:')).connect();
  const rows = (
    await db.runAndReadAll(
      `SELECT type, substr(receivedAt, 1, 10), count(*)::INT FROM read_json('${file}', format='newline_delimited', columns={type: 'VARCHAR', receivedAt: 'VARCHAR'}) GROUP BY 1, 2`,
    )
  ).getRows() as Array<[string, string, number]>;
  const out: Record<string, Record<string, number>> = {};
  for (const [type, day, n] of rows) (out[TABLE[type]!] ??= {})[day] = n;
  return out;
}

/** Rows per table and dt, as the lake's query layer sees them. */
async function lakeByDay(lake: string): Promise<Record<string, Record<string, number>>> {
  const { storage, catalog } = openLocalLake(lake);
  const q = await LakeQuery.open(storage, catalog, { builtinViews: false });
  try {
    const out: Record<string, Record<string, number>> = {};
    for (const t of q.tables) {
      for (const [day, n] of (await q.query(`SELECT CAST(dt AS VARCHAR), count(*)::INT FROM ${t.name} GROUP BY 1`)).rows as Array<[string, number]>) (out[t.name] ??= {})[day] = n;
    }
    return out;
  } finally {
    q.close();
  }
}

const without = (by: Record<string, Record<string, number>>, day: string) =>
  Object.fromEntries(Object.entries(by).map(([t, days]) => [t, Object.fromEntries(Object.entries(days).filter(([d]) => d !== day))]).filter(([, days]) => Object.keys(days as object).length > 0));

/** Parquet rows under a directory tree, read straight from disk (not through the catalog). */
async function rowsOnDisk(glob: string): Promise<number> {
  const db = await (await DuckDBInstance.create(':memory:')).connect();
  try {
    return Number((await db.runAndReadAll(`SELECT count(*) FROM read_parquet('${glob}', hive_partitioning=false)`)).getRows()[0]![0]);
  } catch (err) {
    if (/No files found/.test((err as Error).message)) return 0;
    throw err;
  }
}

function writeInput(file: string): void {
  writeFileSync(file, [...sampleLines({ count: 3000, seed: 11 })].join('\n') + '\n');
}

test('expire drops exactly the days before the cutoff (by the raw lines\' ground truth), their files, old dead letters, raw copies and orphans; a second run finds nothing', async () => {
  const dir = tempDir('expire');
  const lake = `${dir}/lake`;
  const input = `${dir}/in.ndjson`;
  writeInput(input);
  writeFileSync(`${dir}/bad.ndjson`, 'not json\n');
  const { storage, catalog } = openLocalLake(lake);
  await new Ingestor(storage, catalog, { rawCopy: true }).run(new FileSource([input, `${dir}/bad.ndjson`]));
  const truth = await truthByDay(input);
  assert.deepEqual(await lakeByDay(lake), truth, 'ingest holds the ground truth');
  const day1 = '2026-11-20';
  const day1Rows = Object.values(truth).reduce((a, days) => a + (days[day1] ?? 0), 0);
  assert.ok(day1Rows > 500 && Object.keys(truth).filter((t) => truth[t]![day1]).length >= 4, 'day 1 has rows in several tables');

  // An old dead letter (its day long gone) beside today's, and a file no catalog entry names.
  const dl = (await storage.list('_deadletter', { recursive: true })).map((o) => o.key);
  assert.equal(dl.length, 1);
  const oldDl = path.join(lake, dl[0]!.replace(/dt=[^/]+/, 'dt=2026-01-01'));
  mkdirSync(path.dirname(oldDl), { recursive: true });
  writeFileSync(oldDl, (await storage.get(dl[0]!))!);
  const raw = (await storage.list('_raw', { recursive: true })).map((o) => o.key);
  assert.equal(raw.length, 2, 'one raw copy per input file');
  const oldRaw = path.join(lake, raw[0]!.replace(/dt=[^/]+/, 'dt=2026-01-01'));
  mkdirSync(path.dirname(oldRaw), { recursive: true });
  writeFileSync(oldRaw, (await storage.get(raw[0]!))!);
  mkdirSync(`${lake}/tracks/dt=2026-11-19`, { recursive: true });
  writeFileSync(`${lake}/tracks/dt=2026-11-19/left-by-a-crash.parquet`, 'x');
  mkdirSync(`${lake}/tracks/dt=2026-11-22`, { recursive: true });
  writeFileSync(`${lake}/tracks/dt=2026-11-22/not-expired.txt`, 'kept');

  const dry = await expirePartitions(storage, catalog, { before: '2026-11-21', dryRun: true });
  assert.equal(dry.cutoff, '2026-11-21T00:00:00.000Z');
  assert.deepEqual(dry.partitions.map((p) => [p.table, p.values]).sort(), Object.keys(truth).filter((t) => truth[t]![day1]).map((t) => [t, [day1]]).sort());
  assert.deepEqual([dry.deadLetterFiles, dry.rawFiles, dry.orphans], [1, 1, 1]);
  assert.deepEqual(await lakeByDay(lake), truth, 'a dry run changes nothing');
  assert.ok(existsSync(oldDl));

  const r = await expirePartitions(storage, catalog, { before: '2026-11-21' });
  assert.deepEqual(r.partitions.map((p) => [p.table, p.values]), dry.partitions.map((p) => [p.table, p.values]));
  assert.deepEqual(r.skipped, []);
  assert.deepEqual([r.deadLetterFiles, r.rawFiles, r.orphans], [1, 1, 1]);
  assert.equal(r.garbageDeleted, r.files, 'grace 0: every file of the dropped partitions is deleted before the run returns');
  assert.deepEqual(await lakeByDay(lake), without(truth, day1), 'exactly the rows of day 1 are gone');
  for (const t of Object.keys(truth)) {
    assert.ok(!(await catalog.getPartitions(t)).some((p) => p.values[0] === day1));
    assert.equal(await rowsOnDisk(`${lake}/${t}/dt=${day1}/**/*.parquet`), 0, `no file of ${t} for day 1 is left on disk`);
  }
  assert.ok(!existsSync(oldDl) && !existsSync(`${lake}/tracks/dt=2026-11-19/left-by-a-crash.parquet`));
  assert.ok(existsSync(`${lake}/tracks/dt=2026-11-22/not-expired.txt`), 'a path whose day is not over is left alone');
  assert.ok(existsSync(path.join(lake, dl[0]!)), "today's dead letter stays");
  assert.ok(!existsSync(oldRaw) && raw.every((k) => existsSync(path.join(lake, k))), "the old raw copy goes, today's stay");

  // verify counts exactly day 1's rows as missing; a second run expires nothing.
  const v = await verifyLake(storage, catalog, new FileSource([input]));
  assert.deepEqual([v.missing, v.extra], [day1Rows, 0]);
  const again = await expirePartitions(storage, catalog, { before: '2026-11-21' });
  assert.deepEqual([again.partitions.length, again.files, again.orphans, again.deadLetterFiles, again.rawFiles], [0, 0, 0, 0, 0]);
});

test('expire with a grace period keeps a merged partition\'s files (every generation) readable until a later run deletes them', async () => {
  const dir = tempDir('expire-grace');
  const lake = `${dir}/lake`;
  const { storage, catalog } = openLocalLake(lake);
  // Three runs, three small files per partition.
  const lines = [...sampleLines({ count: 3000, seed: 11 })];
  for (let i = 0; i < 3; i++) {
    writeFileSync(`${dir}/in${i}.ndjson`, lines.slice(i * 1000, (i + 1) * 1000).join('\n') + '\n');
    await new Ingestor(storage, catalog, {}).run(new FileSource([`${dir}/in${i}.ndjson`]));
  }
  const merged = await runMerge(storage, catalog, { graceMs: 3_600_000 });
  assert.ok(merged.merged > 0);
  const moved = (await catalog.getPartitions('tracks')).find((p) => p.values[0] === '2026-11-20')!;
  assert.match(moved.location, /\/_g\d+-/, 'day 1 of tracks lives in a generation');
  const before = (await storage.list(`tracks/dt=2026-11-20`, { recursive: true })).length;
  assert.ok(before > (await listCommittedFiles(storage, catalog, 'tracks', [moved])).length, 'the replaced files are still there too');

  const r = await expirePartitions(storage, catalog, { before: '2026-11-21', graceMs: 200, table: 'tracks' });
  assert.deepEqual(r.partitions.map((p) => p.values), [['2026-11-20']]);
  assert.equal(r.partitions[0]!.files, before, 'every object under the partition: its generation and the files it replaced');
  assert.equal(r.orphans, 0, 'files in their grace period are not orphans');
  assert.equal((await storage.list(`tracks/dt=2026-11-20`, { recursive: true })).length, before, 'still on disk during the grace period');
  assert.ok(!(await catalog.getPartitions('tracks')).some((p) => p.values[0] === '2026-11-20'));
  assert.ok((await catalog.getPartitions('pages')).some((p) => p.values[0] === '2026-11-20'), '--table: other tables are left alone');

  await new Promise((res) => setTimeout(res, 300));
  const later = await expirePartitions(storage, catalog, { before: '2026-11-21', table: 'tracks' });
  assert.ok(later.garbageDeleted >= before);
  assert.equal((await storage.list(`tracks/dt=2026-11-20`, { recursive: true })).length, 0, 'gone after the grace period');
});

/** A stream that delivers each batch (flushed at once) after the test lets it through. */
class GatedSource implements Source {
  readonly name = 'gated';
  private gates: Array<() => void> = [];
  private waits: Array<Promise<void>>;
  constructor(private readonly batches: string[][]) {
    this.waits = batches.map(() => new Promise<void>((r) => this.gates.push(r)));
  }
  open(i: number): void {
    this.gates[i]!();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<RecordBatch> {
    let pos = 0;
    for (const [i, b] of this.batches.entries()) {
      await this.waits[i];
      yield { shard: 's1', fallbackReceivedAtMs: 0, flushAfter: true, records: b.map((data) => ({ position: BigInt(++pos), data })) };
    }
  }
}

test('a running ingest that gets a late event for a day expired under it registers the partition again and loses nothing', async () => {
  const lake = `${tempDir('expire-live')}/lake`;
  const { storage, catalog } = openLocalLake(lake);
  const ev = (i: number, receivedAt: string) => JSON.stringify({ type: 'track', event: 'Tick', anonymousId: `a${i}`, messageId: `m${i}`, receivedAt });
  const source = new GatedSource([
    Array.from({ length: 10 }, (_, i) => ev(i, '2026-10-01T10:00:00Z')),
    [ev(100, '2026-10-01T23:00:00Z'), ev(101, '2026-10-02T01:00:00Z')],
  ]);
  const run = new Ingestor(storage, catalog, { decodeWorkers: 0 }).run(source);
  source.open(0);
  for (let i = 0; i < 200 && (await catalog.getPartitions('tracks')).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  for (let i = 0; i < 200 && (await listCommittedFiles(storage, catalog, 'tracks')).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  const r = await expirePartitions(storage, catalog, { before: '2026-10-02' });
  assert.deepEqual(r.partitions.map((p) => [p.table, p.values, p.files]), [['tracks', ['2026-10-01'], 1]]);
  source.open(1);
  const stats = await run;
  assert.equal(stats.written, 12);
  assert.deepEqual(await lakeByDay(lake), { tracks: { '2026-10-01': 1, '2026-10-02': 1 } }, 'the late event is kept in its day, registered again');
  const next = await expirePartitions(storage, catalog, { before: '2026-10-02' });
  assert.deepEqual(next.partitions.map((p) => p.values), [['2026-10-01']], 'and the next run expires it');
});

test('expiry cutoff: exactly one of olderThanMs and before, validated with the bad value named', () => {
  const now = Date.UTC(2026, 11, 5, 3);
  assert.equal(expiryCutoff({ olderThanMs: 90 * 86_400_000 }, now), now - 90 * 86_400_000);
  assert.equal(expiryCutoff({ before: '2026-11-21' }, now), Date.UTC(2026, 10, 21));
  assert.equal(expiryCutoff({ before: '2026-11-21T06:00:00Z' }, now), Date.UTC(2026, 10, 21, 6));
  assert.throws(() => expiryCutoff({}, now), /exactly one of olderThanMs/);
  assert.throws(() => expiryCutoff({ olderThanMs: 1, before: '2026-01-01' }, now), /exactly one/);
  assert.throws(() => expiryCutoff({ olderThanMs: 60_000 }, now), /olderThanMs.*60000.*at least 1 hour/);
  assert.throws(() => expiryCutoff({ before: '21/11/2026' }, now), /before.*21\/11\/2026.*YYYY-MM-DD/);
  assert.throws(() => expiryCutoff({ before: '2027-01-01' }, now), /before.*2027-01-01.*in the past/);
});

test('tributary expire: --dry-run lists, --older-than expires, usage errors exit 2; an hourly spec expires by the hour', async () => {
  const dir = tempDir('expire-cli');
  const lake = `${dir}/lake`;
  const input = `${dir}/in.ndjson`;
  // Events of the last 30 hours, hour-partitioned: a 12-hour retention drops the hours before it.
  const now = Date.now();
  const lines = Array.from({ length: 300 }, (_, i) => JSON.stringify({ type: 'track', event: 'Tick', anonymousId: `a${i}`, messageId: `m${i}`, receivedAt: new Date(now - 30 * 3_600_000 + i * 360_000).toISOString() }));
  writeFileSync(input, lines.join('\n') + '\n');
  assert.equal((await runCli(['ingest', '--lake', lake, '--partition-by', 'dt,hour', input])).code, 0);
  const help = await runCli(['expire', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--older-than DURATION/);
  const usage = await runCli(['expire', '--lake', lake]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /give one of --older-than/);
  const short = await runCli(['expire', '--lake', lake, '--older-than', '5m']);
  assert.equal(short.code, 2);
  assert.match(short.stderr, /olderThanMs.*300000.*at least 1 hour/);
  const cutoff = now - 12 * 3_600_000;
  // Hours that ended before the cutoff, from the raw lines (the run starts a little after `now`).
  const hourEnd = (ms: number) => Math.floor(ms / 3_600_000) * 3_600_000 + 3_600_000;
  const gone = lines.filter((l) => hourEnd(Date.parse(JSON.parse(l).receivedAt)) <= cutoff).length;
  const goneHours = new Set(lines.map((l) => hourEnd(Date.parse(JSON.parse(l).receivedAt))).filter((e) => e <= cutoff)).size;
  const dry = await runCli(['expire', '--lake', lake, '--older-than', '12h', '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /would expire (\d+) partitions/);
  const listed = Number(/would expire (\d+) partitions/.exec(dry.stdout)![1]);
  assert.ok(listed === goneHours || listed === goneHours + 1, `${listed} partitions listed, ${goneHours} hours over by the cutoff`);
  const run = await runCli(['expire', '--lake', lake, '--older-than', '12h', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const r = JSON.parse(run.stdout);
  const left = await lakeByDay(lake);
  const remaining = Object.values(left.tracks ?? {}).reduce((a, b) => a + b, 0);
  const removedExactly = lines.filter((l) => hourEnd(Date.parse(JSON.parse(l).receivedAt)) <= Date.parse(r.cutoff)).length;
  assert.equal(remaining, lines.length - removedExactly, 'exactly the rows of the hours over by the cutoff are gone');
  assert.ok(removedExactly >= gone);
});
