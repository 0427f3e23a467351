import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import type { RecordBatch, Source } from '../../src/source/source.ts';
import { runCli, spawnCli, tempDir } from '../support/tmp.ts';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { sampleLines } from '../../src/sample/generate.ts';

function track(i: number, event = 'Tick'): string {
  return JSON.stringify({ type: 'track', event, anonymousId: `a${i % 7}`, messageId: `m${i}`, receivedAt: '2026-11-21T08:00:00Z' });
}

/** A stream that delivers a few records, then stays quiet until released. */
class TrickleSource implements Source {
  readonly name = 'trickle';
  release!: () => void;
  private readonly released = new Promise<void>((r) => (this.release = r));
  constructor(private readonly lines: string[]) {}
  async *[Symbol.asyncIterator](): AsyncIterator<RecordBatch> {
    yield { shard: 's1', fallbackReceivedAtMs: 0, records: this.lines.map((data, i) => ({ position: BigInt(i + 1), data })) };
    await this.released;
  }
}

async function countRows(lake: string): Promise<number> {
  const { storage, catalog } = openLocalLake(lake);
  const q = await LakeQuery.open(storage, catalog, { builtinViews: false });
  try {
    if (!q.tables.some((t) => t.name === 'tracks')) return 0;
    return (await q.query('SELECT count(*) FROM tracks')).rows[0]![0] as number;
  } finally {
    q.close();
  }
}

test('a quiet partition is flushed by the time cap while the stream stays open', async () => {
  const lake = `${tempDir('cap')}/lake`;
  const { storage, catalog } = openLocalLake(lake);
  const source = new TrickleSource(Array.from({ length: 25 }, (_, i) => track(i)));
  const run = new Ingestor(storage, catalog, { maxFileAgeMs: 300 }).run(source);
  let rows = 0;
  for (let i = 0; i < 100 && rows === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    rows = await countRows(lake);
  }
  assert.equal(rows, 25, 'committed by the time cap before the stream ended');
  source.release();
  const stats = await run;
  assert.equal(stats.written, 25);
  assert.equal(stats.files, 1);
});

/** A stream that delivers the given batches one by one, then stays quiet until released. */
class StagedSource implements Source {
  readonly name = 'staged';
  release!: () => void;
  private readonly released = new Promise<void>((r) => (this.release = r));
  constructor(private readonly batches: string[][]) {}
  async *[Symbol.asyncIterator](): AsyncIterator<RecordBatch> {
    let pos = 0;
    for (const b of this.batches) yield { shard: 's1', fallbackReceivedAtMs: 0, records: b.map((data) => ({ position: BigInt(++pos), data })) };
    await this.released;
  }
}

const at = (i: number, receivedAt: string) => JSON.stringify({ type: 'track', event: 'Tick', anonymousId: `a${i % 7}`, messageId: `m${i}`, receivedAt });

/** Rows committed per dt partition of tracks. */
async function rowsByDay(lake: string): Promise<Record<string, number>> {
  const { storage, catalog } = openLocalLake(lake);
  const q = await LakeQuery.open(storage, catalog, { builtinViews: false });
  try {
    if (!q.tables.some((t) => t.name === 'tracks')) return {};
    const r = await q.query('SELECT CAST(dt AS VARCHAR), count(*) FROM tracks GROUP BY 1 ORDER BY 1');
    return Object.fromEntries(r.rows.map((row) => [row[0] as string, Number(row[1])]));
  } finally {
    q.close();
  }
}

async function waitFor<T>(probe: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  let v = await probe();
  for (let i = 0; i < 200 && !done(v); i++) {
    await new Promise((r) => setTimeout(r, 100));
    v = await probe();
  }
  return v;
}

test('a day whose end the input has passed by closeAfterMs is written while the stream stays open; a late row lands in a new file', async () => {
  const lake = `${tempDir('close')}/lake`;
  const { storage, catalog } = openLocalLake(lake);
  const day1 = Array.from({ length: 30 }, (_, i) => at(i, `2026-11-20T23:${String(i).padStart(2, '0')}:00Z`));
  // Past midnight, but not yet by the hour's grace: day 1 stays open.
  const early = Array.from({ length: 5 }, (_, i) => at(100 + i, '2026-11-21T00:30:00Z'));
  const late = at(200, '2026-11-20T22:00:00Z'); // day 1, arriving after its close
  const day2 = Array.from({ length: 20 }, (_, i) => at(300 + i, '2026-11-21T01:30:00Z'));
  const source = new StagedSource([day1, early, day2, [late]]);
  const stats = new Ingestor(storage, catalog, { maxFileAgeMs: 3_600_000, closeAfterMs: 3_600_000, decodeWorkers: 0 }).run(source);
  const seen = await waitFor(() => rowsByDay(lake), (r) => r['2026-11-20'] !== undefined);
  assert.deepEqual(seen, { '2026-11-20': 30 }, 'day 1 committed once the input passed 01:00 of day 2; day 2 still open');
  source.release();
  const s = await stats;
  assert.equal(s.written, 56);
  assert.deepEqual(await rowsByDay(lake), { '2026-11-20': 31, '2026-11-21': 25 });
  const files = await listCommittedFiles(storage, catalog, 'tracks');
  assert.equal(files.filter((f) => f.partition.values[0] === '2026-11-20').length, 2, 'the late row is a file of its own, written at the end');
  assert.equal(files.filter((f) => f.partition.values[0] === '2026-11-21').length, 1);
});

test('closeAfterMs null keeps a finished day open; a row stamped in the future does not close today', async () => {
  for (const [name, opts, lines] of [
    // A batch of one day, then one of a later day: the first would close, but closing is off.
    ['off', { closeAfterMs: null }, [[at(1, '2026-11-20T10:00:00Z')], [at(2, '2026-11-25T10:00:00Z')]]],
    // The watermark never runs ahead of the wall clock: 2099 cannot close the day that is today.
    ['future', {}, [[at(1, new Date().toISOString())], [at(2, '2099-01-01T00:00:00Z')]]],
  ] as const) {
    const lake = `${tempDir(`close-${name}`)}/lake`;
    const { storage, catalog } = openLocalLake(lake);
    const source = new StagedSource(lines.map((b) => [...b]));
    const run = new Ingestor(storage, catalog, { maxFileAgeMs: 3_600_000, decodeWorkers: 0, ...opts }).run(source);
    let committedEarly: number;
    try {
      // The timer checks partitions every second: two ticks pass with the stream quiet.
      await new Promise((r) => setTimeout(r, 2500));
      committedEarly = await countRows(lake);
    } finally {
      source.release(); // the run ends whatever was found, so a failure cannot hang the test
    }
    assert.equal(committedEarly, 0, `${name}: nothing committed while the stream is open`);
    assert.equal((await run).written, 2);
    assert.equal(await countRows(lake), 2);
  }
});

test('aborting a quiet stream flushes and commits what was read', async () => {
  const lake = `${tempDir('abort')}/lake`;
  const { storage, catalog } = openLocalLake(lake);
  const source = new TrickleSource(Array.from({ length: 10 }, (_, i) => track(i)));
  const ac = new AbortController();
  const run = new Ingestor(storage, catalog, { signal: ac.signal }).run(source);
  await new Promise((r) => setTimeout(r, 300));
  ac.abort();
  const stats = await run;
  assert.equal(stats.written, 10);
  assert.equal(await countRows(lake), 10);
});

test('more partitions than maxOpenPartitions: the oldest are flushed, nothing is lost', async () => {
  const lake = `${tempDir('open')}/lake`;
  const { storage, catalog } = openLocalLake(lake);
  const lines = Array.from({ length: 2000 }, (_, i) => track(i, `Event ${i % 40}`));
  const source: Source = {
    name: 'many',
    async *[Symbol.asyncIterator]() {
      for (let i = 0; i < lines.length; i += 100) yield { shard: 's', fallbackReceivedAtMs: 0, records: lines.slice(i, i + 100).map((data, j) => ({ position: BigInt(i + j + 1), data })) };
    },
  };
  const stats = await new Ingestor(storage, catalog, { partitionBy: 'event,dt', maxOpenPartitions: 4, decodeWorkers: 0 }).run(source);
  assert.equal(stats.written, 2000);
  const files = await listCommittedFiles(storage, catalog, 'tracks');
  assert.ok(files.length > 40, `partitions were flushed early, several times (${files.length} files)`);
  assert.equal(new Set(files.map((f) => f.partition.location)).size, 40);
  assert.equal(await countRows(lake), 2000);
});

test('SIGTERM during a long ingest commits what was read and exits 0; the next run completes exactly', async () => {
  const dir = tempDir('term');
  const lake = `${dir}/lake`;
  const lines = [...sampleLines({ count: 150_000, seed: 4 })];
  writeFileSync(`${dir}/big.ndjson`, lines.join('\n') + '\n');
  const child = spawnCli(['ingest', '--lake', lake, '--json', '--target-file-size', '256KB', `${dir}/big.ndjson`]);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  // Once it is well into the run (a file committed), not after a fixed time: a loaded machine boots the CLI slowly.
  const committed = () => readdirSync(lake, { recursive: true, encoding: 'utf8' }).some((p) => p.endsWith('.parquet') && !p.includes('_tributary'));
  for (const end = Date.now() + 120_000; Date.now() < end && !(existsSync(lake) && committed()); ) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGTERM');
  assert.equal(await exited, 0, err);
  const first = JSON.parse(out);
  assert.ok(first.read > 0 && first.read < 150_000, `stopped part way (read ${first.read})`);
  assert.equal(first.written, first.read, 'everything read was committed');
  assert.equal(await countRows(lake) + (await countOthers(lake)), first.written);
  const again = await runCli(['ingest', '--lake', lake, '--json', `${dir}/big.ndjson`]);
  const second = JSON.parse(again.stdout);
  assert.equal(second.skipped, first.written);
  assert.equal(second.written + second.skipped, 150_000);
  assert.equal(await countRows(lake) + (await countOthers(lake)), 150_000);
});

async function countOthers(lake: string): Promise<number> {
  const { storage, catalog } = openLocalLake(lake);
  const q = await LakeQuery.open(storage, catalog, { builtinViews: false });
  try {
    let n = 0;
    for (const t of q.tables) if (t.name !== 'tracks') n += (await q.query(`SELECT count(*) FROM ${t.name}`)).rows[0]![0] as number;
    return n;
  } finally {
    q.close();
  }
}

test('DuckDB running out of memory is retried single-threaded, then reported naming the setting; nothing partial is committed', async () => {
  const lake = `${tempDir('oom')}/lake`;
  const { storage, catalog } = openLocalLake(lake);
  const lines = [...sampleLines({ count: 20_000, seed: 12, padToBytes: 2000 })];
  const source: Source = {
    name: 'oom',
    async *[Symbol.asyncIterator]() {
      yield { shard: 's', fallbackReceivedAtMs: 0, records: lines.map((data, i) => ({ position: BigInt(i + 1), data })) };
    },
  };
  await assert.rejects(
    new Ingestor(storage, catalog, { duckdb: { memoryLimit: '4MB' }, decodeWorkers: 0 }).run(source),
    (err: Error) => err.name === 'WriterError' && /single-threaded retry; raise duckdb\.memoryLimit/.test(err.message) && /Out of Memory/i.test(err.message),
  );
  const files = (await storage.list('', { recursive: true })).filter((o) => o.key.endsWith('.parquet'));
  assert.deepEqual(files, []);
});

test('a finished write frees its slot while an earlier commit is pending; finished files waiting to commit are bounded', async () => {
  const dir = tempDir('slots');
  const lake = `${dir}/lake`;
  const spoolDir = `${dir}/spool`;
  const { storage, catalog } = openLocalLake(lake);
  // The first commit's upload blocks until released, as a slow upload would.
  let releaseUpload!: () => void;
  const uploadReleased = new Promise<void>((r) => (releaseUpload = r));
  let uploads = 0;
  const slow = new Proxy(storage, {
    get(target, prop, receiver) {
      if (prop === 'putFile')
        return async (key: string, local: string) => {
          if (uploads++ === 0) await uploadReleased;
          return target.putFile(key, local);
        };
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  // Seven days, one batch each, each flushed at its batch's end: seven files, one write slot.
  const days = Array.from({ length: 7 }, (_, d) => Array.from({ length: 20 }, (_, i) => at(d * 100 + i, `2026-11-${String(10 + d).padStart(2, '0')}T08:00:00Z`)));
  let pos = 0;
  const source: Source = {
    name: 'days',
    async *[Symbol.asyncIterator](): AsyncIterator<RecordBatch> {
      for (const b of days) yield { shard: 's1', fallbackReceivedAtMs: 0, flushAfter: true, records: b.map((data) => ({ position: BigInt(++pos), data })) };
    },
  };
  const run = new Ingestor(slow, catalog, { maxConcurrentWrites: 1, spoolDir, closeAfterMs: null }).run(source);
  const parquetFiles = () => (existsSync(spoolDir) ? readdirSync(spoolDir, { recursive: true }).filter((f) => String(f).endsWith('.parquet')).length : 0);
  // With the first commit held, later writes still run on the one slot, up to 4 finished files per slot.
  try {
    for (let i = 0; i < 300 && parquetFiles() < 4; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(parquetFiles(), 4, 'four files written while the first commit waits');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(parquetFiles(), 4, 'no fifth write starts while four files wait to commit');
    assert.deepEqual(await rowsByDay(lake), {}, 'nothing is visible before its commit');
  } finally {
    releaseUpload();
  }
  const stats = await run;
  assert.equal(stats.files, 7);
  assert.equal(stats.written, 140);
  assert.deepEqual(await rowsByDay(lake), Object.fromEntries(days.map((_, d) => [`2026-11-${String(10 + d).padStart(2, '0')}`, 20])));
});
