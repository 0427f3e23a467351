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
