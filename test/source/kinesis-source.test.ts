import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { openLocalLake } from '../../src/lake.ts';
import { consumeKinesis } from '../../src/ingest/kinesis-consumer.ts';
import { Ingestor, type IngestStats } from '../../src/ingest/ingestor.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { aggregate } from '../../src/source/kpl.ts';
import { KinesisSource } from '../../src/source/kinesis-source.ts';
import type { RecordBatch } from '../../src/source/source.ts';
import { LocalStorage } from '../../src/storage/local-storage.ts';
import { expectedAnswers } from '../support/ground-truth.ts';
import { startKinesalite, createStream, mergeShards, putLines, splitShard, listShards, type Kinesalite } from '../support/kinesalite.ts';
import { assertGroundTruth, cliQuery, lakeAnswers } from '../support/lake-answers.ts';
import { tempDir } from '../support/tmp.ts';
import { dropConnection, kinesisExpiredIterator, kinesisLimitExceeded, kinesisTarget, kinesisThrottle, startFaultProxy } from '../support/fault-proxy.ts';
import { localKinesisClient } from '../support/kinesalite.ts';

let k: Kinesalite;
before(async () => {
  k = await startKinesalite();
});
after(async () => {
  await k.stop();
});

/** Runs consumeKinesis until `done(stats)` holds, then stops it; returns the final counts. */
async function consumeUntil(lake: string, stream: string, done: (s: IngestStats) => boolean, extra: { leaseTimeoutMs?: number; endpoint?: string } = {}): Promise<IngestStats> {
  const { storage, catalog } = openLocalLake(lake);
  const ac = new AbortController();
  const logs: string[] = [];
  const run = consumeKinesis(
    new Ingestor(storage, catalog, { maxFileAgeMs: 300, targetFileBytes: 64 * 1024, signal: ac.signal, onProgress: (s) => done(s) && ac.abort() }),
    { stream, storage, client: extra.endpoint ? localKinesisClient(extra.endpoint) : k.client(), shardSyncMs: 200, idlePollMs: 200, leaseTimeoutMs: extra.leaseTimeoutMs ?? 5_000, onLog: (l) => logs.push(l), consumerName: 'test' },
    ac.signal,
  );
  const timeout = setTimeout(() => ac.abort(), 120_000);
  try {
    return await run;
  } finally {
    clearTimeout(timeout);
  }
}

function deadLetters(lake: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  const root = `${lake}/_deadletter`;
  for (const f of readdirSync(root, { recursive: true, encoding: 'utf8' })) {
    if (!f.endsWith('.ndjson')) continue;
    for (const line of readFileSync(`${root}/${f}`, 'utf8').split('\n')) if (line) out.push(JSON.parse(line));
  }
  return out;
}

test('a 4-shard stream of single events, batch envelopes, NDJSON records and KPL aggregates lands exactly once, bad payloads dead-lettered with their sequence numbers', async () => {
  const dir = tempDir('kin');
  const lake = `${dir}/lake`;
  const client = k.client();
  await createStream(client, 'mixed', 4);
  const lines = [...sampleLines({ count: 6000, seed: 31, invalidRate: 0.02, batchRate: 0.03 })];
  // Records: singles for the first third, NDJSON groups of 7 for the second, KPL aggregates of 10 for the rest.
  const payloads: Array<string | Uint8Array> = [];
  const a = Math.floor(lines.length / 3);
  const b = 2 * a;
  for (let i = 0; i < a; i++) payloads.push(lines[i]!);
  for (let i = a; i < b; i += 7) payloads.push(lines.slice(i, Math.min(b, i + 7)).join('\n') + '\n');
  for (let i = b; i < lines.length; i += 10) {
    // As the KPL: an aggregate holds records bound for one shard (here: putLines' key for this payload).
    const key = `pk-${payloads.length}`;
    payloads.push(aggregate(lines.slice(i, i + 10).map((l) => ({ partitionKey: key, data: Buffer.from(l) }))));
  }
  // An aggregate put on a stale shard map: its second user record hashes to another shard, where the
  // KPL puts it again; read here it would count twice, so it is skipped (as the KCL does).
  const ownKey = `pk-${payloads.length}`;
  const strayEvent = JSON.stringify({ type: 'track', event: 'Stray', anonymousId: 'x', messageId: 'stray-1', timestamp: '2026-11-20T00:00:00Z' });
  const shardOf = (h: bigint) => (h < 1n << 126n ? 0 : h < 1n << 127n ? 1 : h < 3n << 126n ? 2 : 3); // 4 even shards
  const { effectiveHashKey } = await import('../../src/source/kpl.ts');
  const strayHash = ((BigInt(shardOf(effectiveHashKey(ownKey))) + 2n) % 4n) * (1n << 126n) + 5n;
  const ownEvent = strayEvent.replace('Stray', 'Own').replace('stray-1', 'own-1');
  payloads.push(aggregate([{ partitionKey: ownKey, data: Buffer.from(ownEvent) }, { partitionKey: 'stray', explicitHashKey: strayHash.toString(), data: Buffer.from(strayEvent) }]));
  lines.push(ownEvent);
  const broken = [Uint8Array.of(0xff, 0xfe, 0x41), Uint8Array.of(0xf3, 0x89, 0x9a, 0xc2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17), 'hello, not JSON'];
  payloads.push(...broken);
  const placed = await putLines(client, 'mixed', payloads);
  const expected = await expectedAnswers(lines, dir);
  const total = expected.valid + expected.invalid + broken.length;

  const stats = await consumeUntil(lake, 'mixed', (s) => s.read >= total && s.files > 0);
  assert.equal(stats.read, total);
  assert.equal(stats.deadLettered, expected.invalid + broken.length);
  assertGroundTruth(await lakeAnswers(lake), expected);

  const dls = deadLetters(lake);
  assert.equal(dls.length, expected.invalid + broken.length);
  for (const [i, p] of broken.entries()) {
    const where = placed[payloads.length - broken.length + i]!;
    const dl = dls.find((d) => (d.meta as Record<string, string>)?.sequenceNumber === where.sequenceNumber);
    assert.ok(dl, `dead letter for ${where.sequenceNumber}`);
    assert.equal(dl.shard, where.shardId);
    if (typeof p === 'string') assert.equal(dl.raw, p);
    else assert.equal(dl.raw, Buffer.from(p).toString('base64'), 'raw bytes kept');
  }
  assert.ok(dls.some((d) => /not UTF-8/.test(String(d.reason))));
  assert.deepEqual(await cliQuery(lake, "SELECT count(*) FILTER (WHERE message_id = 'own-1') AS own, count(*) FILTER (WHERE message_id = 'stray-1') AS stray FROM tracks"), [{ own: 1, stray: 0 }]);
  assert.ok(dls.some((d) => /corrupt KPL/.test(String(d.reason))));

  // A second consumer run on the same lake reads from the checkpoints: nothing new, nothing twice.
  const again = await consumeUntil(lake, 'mixed', () => true);
  assert.equal(again.written, 0);
  assertGroundTruth(await lakeAnswers(lake), expected);
});

test('after a SplitShard, the children are read only once the parent is read to its end and committed; new shards are noticed without a restart', async () => {
  const dir = tempDir('kin-split');
  const storage = new LocalStorage(`${dir}/lake`);
  const client = k.client();
  await createStream(client, 'split', 1);
  await putLines(client, 'split', [...sampleLines({ count: 300, seed: 5 })]);
  const source = new KinesisSource({ stream: 'split', storage, client: k.client(), shardSyncMs: 100, idlePollMs: 200, leaseTimeoutMs: 5_000 });
  const it = source[Symbol.asyncIterator]();
  const order: string[] = [];
  let split: [string, string] | null = null;
  let parentCommitted = false;
  const childRecords = new Map<string, number>();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const { value, done } = (await it.next()) as IteratorResult<RecordBatch>;
    if (done) break;
    const b = value;
    if (b.records.length > 0) order.push(b.shard);
    if (b.shard !== 'shardId-000000000000') {
      assert.ok(parentCommitted, `child ${b.shard} read before its parent was committed`);
      childRecords.set(b.shard, (childRecords.get(b.shard) ?? 0) + b.records.length);
    }
    const last = b.records.at(-1);
    if (split === null && b.records.length > 0) {
      split = await splitShard(client, 'split', 'shardId-000000000000');
      await putLines(client, 'split', [...sampleLines({ count: 200, seed: 6 })], { partitionKey: (i) => `after-${i}` });
    }
    if (last !== undefined) await source.checkpoint(b.shard, (last.position << 20n) | 0xfffffn); // as if committed at once
    if (b.flushAfter) {
      if (b.shard === 'shardId-000000000000') parentCommitted = true;
      await source.checkpoint(b.shard, 1n << 300n);
    }
    if ([...childRecords.values()].reduce((x, y) => x + y, 0) >= 200) break;
  }
  await source.close();
  assert.ok(split !== null);
  assert.equal([...childRecords.values()].reduce((x, y) => x + y, 0), 200, 'every record put after the split was read from the children');
  const cp = JSON.parse(readFileSync(`${dir}/lake/_tributary/kinesis/kinesis-split/checkpoints/shardId-000000000000.json`, 'utf8'));
  assert.equal(cp.closed, true, 'the parent is checkpointed as closed');
  assert.equal((await listShards(client, 'split')).length, 3);
});

test('after a MergeShards, the child is read only once both parents are read to their end and committed', async () => {
  const storage = new LocalStorage(`${tempDir('kin-merge')}/lake`);
  const client = k.client();
  await createStream(client, 'merge', 2);
  await putLines(client, 'merge', [...sampleLines({ count: 200, seed: 8 })]);
  const source = new KinesisSource({ stream: 'merge', storage, client: k.client(), shardSyncMs: 100, idlePollMs: 200, leaseTimeoutMs: 5_000 });
  const it = source[Symbol.asyncIterator]();
  const parents = ['shardId-000000000000', 'shardId-000000000001'];
  const closed = new Set<string>();
  let merged = false;
  let childRecords = 0;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline && childRecords < 100; ) {
    const { value: b, done } = (await it.next()) as IteratorResult<RecordBatch>;
    if (done) break;
    if (!parents.includes(b.shard)) {
      assert.equal(closed.size, 2, `child ${b.shard} read before both parents were committed (${[...closed]})`);
      childRecords += b.records.length;
    }
    if (!merged && b.records.length > 0) {
      merged = true;
      await mergeShards(client, 'merge', parents[0]!, parents[1]!);
      await putLines(client, 'merge', [...sampleLines({ count: 100, seed: 9 })], { partitionKey: (i) => `m-${i}` });
    }
    const last = b.records.at(-1);
    if (last !== undefined) await source.checkpoint(b.shard, (last.position << 20n) | 0xfffffn);
    if (b.flushAfter) {
      closed.add(b.shard);
      await source.checkpoint(b.shard, 1n << 300n);
    }
  }
  await source.close();
  assert.equal(childRecords, 100, 'every record put after the merge was read from the child');
});

test('throttling, expired iterators, limit errors and dropped connections are survived: the result is still exact', async () => {
  const dir = tempDir('kin-faults');
  const lake = `${dir}/lake`;
  const client = k.client();
  await createStream(client, 'faulty', 2);
  const lines = [...sampleLines({ count: 4000, seed: 41, invalidRate: 0.02 })];
  const payloads: string[] = [];
  for (let i = 0; i < lines.length; i += 5) payloads.push(lines.slice(i, i + 5).join('\n'));
  await putLines(client, 'faulty', payloads);
  const expected = await expectedAnswers(lines, dir);
  let getRecords = 0;
  let iterators = 0;
  const proxy = await startFaultProxy(k.endpoint, (req) => {
    const op = kinesisTarget(req);
    if (op === 'GetRecords') {
      // Bursts of four throttles outlast the SDK's own three attempts, so the consumer's backoff runs too.
      // The first burst starts at the first call, so a fast consumer that needs few calls still meets one.
      const n = getRecords++;
      if (n % 12 < 4) return kinesisThrottle();
      if (n % 12 === 6) return kinesisExpiredIterator();
      if (n % 29 === 28) return dropConnection();
    }
    if (op === 'GetShardIterator' && ++iterators % 3 === 1) return kinesisLimitExceeded();
    return undefined;
  });
  try {
    const stats = await consumeUntil(lake, 'faulty', (s) => s.read >= expected.valid + expected.invalid && s.written + s.deadLettered >= s.read, { endpoint: proxy.endpoint });
    assert.equal(stats.read, expected.valid + expected.invalid);
    const inj = proxy.stats.injected;
    assert.ok((inj.kinesisThrottle ?? 0) >= 4, `throttled: ${JSON.stringify(inj)}`);
    assert.ok((inj.kinesisExpiredIterator ?? 0) >= 1, `expired: ${JSON.stringify(inj)}`);
    assert.ok((inj.kinesisLimitExceeded ?? 0) >= 1, `limited: ${JSON.stringify(inj)}`);
  } finally {
    await proxy.stop();
  }
  assertGroundTruth(await lakeAnswers(lake), expected);
});

test('a source stopped while it is taking its leases starts no reader, and closes', async () => {
  const dir = tempDir('kin-stop');
  const client = k.client();
  await createStream(client, 'stopping', 4);
  await putLines(client, 'stopping', [...sampleLines({ count: 40, seed: 5 })]);
  // Stops at several moments of the start (listing shards, taking leases one by one): a reader
  // started after stop() used to poll forever, and close() waited for it.
  for (let delayMs = 0; delayMs <= 60; delayMs += 4) {
    const src = new KinesisSource({ stream: 'stopping', storage: new LocalStorage(`${dir}/lake`), client, shardSyncMs: 200, idlePollMs: 200, leaseTimeoutMs: 5_000, consumerName: `stop-${delayMs}` });
    const it = src[Symbol.asyncIterator]();
    void it.next().catch(() => undefined);
    await new Promise((r) => setTimeout(r, delayMs));
    await it.return!();
    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([src.close().then(() => 'closed'), new Promise((r) => (timer = setTimeout(() => r('hung'), 10_000)))]);
    clearTimeout(timer);
    assert.equal(closed, 'closed', `stopped after ${delayMs} ms`);
  }
});
