/**
 * What kinesalite 3.3.3 does, asserted, so the Kinesis consumer's tests can rely on it (see kinesalite.ts's header),
 * and the helpers (putLines, splitShard, mergeShards, expireIterator) tested.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  type GetRecordsCommandOutput,
  type KinesisClient,
  type _Record,
  type ShardIteratorType,
} from '@aws-sdk/client-kinesis';
import { effectiveHashKey } from '../../src/source/kpl.ts';
import { kinesisTarget, startFaultProxy } from './fault-proxy.ts';
import { createStream, expireIterator, listShards, localKinesisClient, mergeShards, putLines, splitShard, startKinesalite, type Kinesalite } from './kinesalite.ts';

let kin: Kinesalite;
let client: KinesisClient;
let streams = 0;

before(async () => {
  kin = await startKinesalite();
  client = kin.client();
});
after(() => kin.stop());

/** A fresh stream with `shards` shards. */
async function stream(shards: number): Promise<string> {
  const name = `s${++streams}`;
  await createStream(client, name, shards);
  return name;
}

async function iterator(s: string, shardId: string, type: ShardIteratorType, extra: { StartingSequenceNumber?: string; Timestamp?: Date } = {}) {
  const out = await client.send(new GetShardIteratorCommand({ StreamName: s, ShardId: shardId, ShardIteratorType: type, ...extra }));
  return out.ShardIterator!;
}

/** Reads a shard from `it` until a response has no NextShardIterator (or `maxCalls`); returns the records and the responses. */
async function drain(it: string, maxCalls = 50): Promise<{ records: _Record[]; responses: GetRecordsCommandOutput[]; ended: boolean }> {
  const records: _Record[] = [];
  const responses: GetRecordsCommandOutput[] = [];
  let next: string | undefined = it;
  while (next !== undefined && responses.length < maxCalls) {
    const out: GetRecordsCommandOutput = await client.send(new GetRecordsCommand({ ShardIterator: next }));
    responses.push(out);
    records.push(...(out.Records ?? []));
    next = out.NextShardIterator ?? undefined;
  }
  return { records, responses, ended: next === undefined };
}

const text = (r: _Record) => Buffer.from(r.Data!).toString('utf8');

test('putLines puts in input order, each record in the shard whose hash range holds MD5(partition key); ListShards is one page', async () => {
  const s = await stream(3);
  const payloads = Array.from({ length: 1_234 }, (_, i) => `{"i":${i}}`);
  const placed = await putLines(client, s, payloads);
  const shards = await listShards(client, s);
  assert.deepEqual(shards.map((x) => x.ShardId), ['shardId-000000000000', 'shardId-000000000001', 'shardId-000000000002']);
  placed.forEach((p, i) => {
    const shard = shards.find((x) => x.ShardId === p.shardId)!;
    const h = effectiveHashKey(`pk-${i}`);
    assert.ok(BigInt(shard.HashKeyRange!.StartingHashKey!) <= h && h <= BigInt(shard.HashKeyRange!.EndingHashKey!), `record ${i}`);
  });
  for (const shard of shards) {
    const expected = placed.map((p, i) => ({ ...p, i })).filter((p) => p.shardId === shard.ShardId);
    assert.ok(expected.length > 300, 'the keys spread over the shards');
    const { records } = await drain(await iterator(s, shard.ShardId!, 'TRIM_HORIZON'), 3);
    assert.deepEqual(records.map(text), expected.map((p) => payloads[p.i]));
    assert.deepEqual(records.map((r) => r.SequenceNumber), expected.map((p) => p.sequenceNumber));
    assert.deepEqual(records.map((r) => r.PartitionKey), expected.map((p) => `pk-${p.i}`));
    const seqs = records.map((r) => BigInt(r.SequenceNumber!));
    assert.ok(seqs.every((q, k) => k === 0 || q > seqs[k - 1]!), 'sequence numbers increase within a shard');
  }

  const page = await client.send(new ListShardsCommand({ StreamName: s, MaxResults: 1 }));
  assert.equal(page.Shards?.length, 3, 'MaxResults is ignored');
  assert.equal(page.NextToken, undefined, 'never a NextToken (and a request with one crashes kinesalite: never send it)');
  const filtered = await client.send(new ListShardsCommand({ StreamName: s, ShardFilter: { Type: 'AT_LATEST' } }));
  assert.equal(filtered.Shards?.length, 3, 'ShardFilter is ignored');
  const after0 = await client.send(new ListShardsCommand({ StreamName: s, ExclusiveStartShardId: 'shardId-000000000000' }));
  assert.deepEqual(after0.Shards?.map((x) => x.ShardId), ['shardId-000000000001', 'shardId-000000000002']);
});

test('putLines keeps requests within 500 records and 5 MiB, and retries only the entries a response reports failed', async () => {
  const s = await stream(2);
  const bodies: number[] = [];
  let failedOnce = false;
  const proxy = await startFaultProxy(kin.endpoint, async (req) => {
    if (kinesisTarget(req) !== 'PutRecords') return undefined;
    bodies.push(req.body.length);
    const request = JSON.parse(req.body.toString()) as { StreamName: string; Records: unknown[] };
    if (failedOnce || request.Records.length > 20) return undefined;
    failedOnce = true;
    // PutRecords' partial failure: put the even entries for real, report the odd ones throttled (HTTP 200).
    const evens = request.Records.filter((_, k) => k % 2 === 0);
    const headers = Object.fromEntries(['content-type', 'x-amz-target', 'x-amz-date', 'authorization'].map((h) => [h, String(req.headers[h])]));
    const res = await fetch(kin.endpoint, { method: 'POST', headers, body: JSON.stringify({ ...request, Records: evens }) });
    const put = (await res.json()) as { Records: object[] };
    const Records = request.Records.map((_, k) =>
      k % 2 === 0 ? put.Records[k / 2] : { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: `Rate exceeded for shard shardId-000000000000 in stream ${s} under account 000000000000.` },
    );
    return { name: 'partial', status: 200, headers: { 'content-type': 'application/x-amz-json-1.1' }, body: JSON.stringify({ FailedRecordCount: Records.length - evens.length, Records }) };
  });
  const viaProxy = localKinesisClient(proxy.endpoint);
  try {
    const small = Array.from({ length: 9 }, (_, i) => `small-${i}`);
    const placedSmall = await putLines(viaProxy, s, small);
    assert.equal(proxy.stats.injected.partial, 1);
    assert.deepEqual(bodies.length, 2, 'one request, then one retry of the 4 failed entries');

    const big = Array.from({ length: 600 }, (_, i) => `${i}:`.padEnd(20_000, 'x'));
    const placedBig = await putLines(viaProxy, s, big, { partitionKey: (i) => `big-${i}` });
    // 5 MiB holds 262 of these: bytes, not the 500-entry limit, cut the requests (262 + 262 + 76).
    assert.equal(bodies.length, 2 + 3, `requests: ${bodies.length}`);
    const count = await putLines(viaProxy, s, Array.from({ length: 1_001 }, (_, i) => `c${i}`));
    assert.equal(bodies.length, 5 + 3, '1001 small records go in 500 + 500 + 1');
    assert.ok(Math.max(...bodies) <= Math.ceil((5 * 1024 * 1024 * 4) / 3) + 64 * 1024, 'base64 of at most 5 MiB, plus JSON');

    const all = [...small, ...big, ...count.map((_, i) => `c${i}`)];
    const placed = [...placedSmall, ...placedBig, ...count];
    const read = new Map<string, string>();
    for (const shard of await listShards(client, s)) {
      for (const r of (await drain(await iterator(s, shard.ShardId!, 'TRIM_HORIZON'), 3)).records) read.set(r.SequenceNumber!, text(r));
    }
    assert.equal(read.size, all.length, 'each payload stored once');
    placed.forEach((p, i) => assert.equal(read.get(p.sequenceNumber), all[i], `payload ${i}`));
  } finally {
    viaProxy.destroy();
    await proxy.stop();
  }
});

test('SplitShard: children listed with ParentShardId; the parent is closed, drains its records, then has no NextShardIterator; no ChildShards', async () => {
  const s = await stream(1);
  const beforeSplit = await putLines(client, s, Array.from({ length: 20 }, (_, i) => `before-${i}`));
  assert.ok(beforeSplit.every((p) => p.shardId === 'shardId-000000000000'));
  const [low, high] = await splitShard(client, s, 'shardId-000000000000');
  assert.deepEqual([low, high], ['shardId-000000000001', 'shardId-000000000002']);

  const shards = await listShards(client, s);
  const [parent, a, b] = shards;
  assert.ok(parent!.SequenceNumberRange!.EndingSequenceNumber, 'the parent is closed');
  assert.equal(parent!.ParentShardId, undefined);
  for (const child of [a!, b!]) {
    assert.equal(child.ParentShardId, 'shardId-000000000000');
    assert.equal(child.AdjacentParentShardId, undefined);
    assert.equal(child.SequenceNumberRange!.EndingSequenceNumber, undefined);
  }
  assert.equal(a!.HashKeyRange!.StartingHashKey, '0');
  assert.equal(BigInt(a!.HashKeyRange!.EndingHashKey!) + 1n, BigInt(b!.HashKeyRange!.StartingHashKey!));
  assert.equal(b!.HashKeyRange!.EndingHashKey, String(2n ** 128n - 1n));

  const afterSplit = await putLines(client, s, Array.from({ length: 20 }, (_, i) => `after-${i}`));
  assert.ok(afterSplit.every((p) => p.shardId === low || p.shardId === high), 'new records go to the children');

  const { records, responses, ended } = await drain(await iterator(s, 'shardId-000000000000', 'TRIM_HORIZON'));
  assert.ok(ended, 'the parent ends');
  assert.deepEqual(records.map(text), Array.from({ length: 20 }, (_, i) => `before-${i}`));
  assert.ok(responses.length <= 3, `ended within two calls after the records (${responses.length} calls)`);
  for (const r of responses) assert.equal(r.ChildShards, undefined, 'kinesalite never returns ChildShards');
  const last = responses.at(-1)!;
  assert.equal(last.Records?.length, 0);

  const latest = await client.send(new GetRecordsCommand({ ShardIterator: await iterator(s, 'shardId-000000000000', 'LATEST') }));
  assert.equal(latest.NextShardIterator, undefined, 'LATEST on a closed shard ends at once');
  const children = await drain(await iterator(s, low, 'TRIM_HORIZON'), 2);
  assert.ok(!children.ended, 'an open shard always has a next iterator');
  assert.ok(children.responses.every((r) => r.MillisBehindLatest === 0));
});

test('MergeShards: the child has ParentShardId and AdjacentParentShardId and spans both; both parents end', async () => {
  const s = await stream(2);
  await putLines(client, s, Array.from({ length: 30 }, (_, i) => `m${i}`));
  const child = await mergeShards(client, s, 'shardId-000000000000', 'shardId-000000000001');
  assert.equal(child, 'shardId-000000000002');
  const [p0, p1, c] = await listShards(client, s);
  assert.equal(c!.ParentShardId, 'shardId-000000000000');
  assert.equal(c!.AdjacentParentShardId, 'shardId-000000000001');
  assert.deepEqual(c!.HashKeyRange, { StartingHashKey: p0!.HashKeyRange!.StartingHashKey, EndingHashKey: p1!.HashKeyRange!.EndingHashKey });
  let total = 0;
  for (const parent of [p0!, p1!]) {
    assert.ok(parent.SequenceNumberRange!.EndingSequenceNumber);
    const { records, ended } = await drain(await iterator(s, parent.ShardId!, 'TRIM_HORIZON'));
    assert.ok(ended);
    total += records.length;
  }
  assert.equal(total, 30);
  const more = await putLines(client, s, ['after merge']);
  assert.equal(more[0]!.shardId, child);
});

test('iterator types: TRIM_HORIZON, LATEST, AT/AFTER_SEQUENCE_NUMBER, AT_TIMESTAMP (which hangs past the last record)', async () => {
  const s = await stream(1);
  const placed: Array<{ sequenceNumber: string }> = [];
  for (let i = 0; i < 5; i++) {
    placed.push(...(await putLines(client, s, [`r${i}`])));
    await sleep(5); // distinct arrival times (kinesalite keeps them to the millisecond)
  }
  const first = async (it: string) => text((await client.send(new GetRecordsCommand({ ShardIterator: it }))).Records![0]!);
  const all = await client.send(new GetRecordsCommand({ ShardIterator: await iterator(s, 'shardId-000000000000', 'TRIM_HORIZON') }));
  assert.deepEqual(all.Records!.map(text), ['r0', 'r1', 'r2', 'r3', 'r4']);
  assert.equal(await first(await iterator(s, 'shardId-000000000000', 'AT_SEQUENCE_NUMBER', { StartingSequenceNumber: placed[2]!.sequenceNumber })), 'r2');
  assert.equal(await first(await iterator(s, 'shardId-000000000000', 'AFTER_SEQUENCE_NUMBER', { StartingSequenceNumber: placed[2]!.sequenceNumber })), 'r3');
  const arrival = all.Records![3]!.ApproximateArrivalTimestamp!;
  assert.ok(arrival > all.Records![2]!.ApproximateArrivalTimestamp!);
  assert.equal(await first(await iterator(s, 'shardId-000000000000', 'AT_TIMESTAMP', { Timestamp: arrival })), 'r3');

  const latest = await iterator(s, 'shardId-000000000000', 'LATEST');
  const empty = await client.send(new GetRecordsCommand({ ShardIterator: latest }));
  assert.equal(empty.Records?.length, 0);
  await putLines(client, s, ['r5']);
  assert.deepEqual((await client.send(new GetRecordsCommand({ ShardIterator: empty.NextShardIterator! }))).Records!.map(text), ['r5']);

  await assert.rejects(iterator(s, 'shardId-000000000000', 'AT_TIMESTAMP', { Timestamp: new Date(Date.now() + 60_000) }), { name: 'InvalidArgumentException' });
  await sleep(5);
  const impatient = localKinesisClient(kin.endpoint, { maxAttempts: 1, requestTimeout: 1_000 });
  try {
    const pastTip = impatient.send(new GetShardIteratorCommand({ StreamName: s, ShardId: 'shardId-000000000000', ShardIteratorType: 'AT_TIMESTAMP', Timestamp: new Date() }));
    await assert.rejects(pastTip, { name: 'TimeoutError' }, 'kinesalite never answers AT_TIMESTAMP past the last record');
  } finally {
    impatient.destroy();
  }
});

test('iterators are reusable until 300 000 ms after their creation; expireIterator forges an older one', async () => {
  const s = await stream(1);
  await putLines(client, s, ['a', 'b']);
  const it = await iterator(s, 'shardId-000000000000', 'TRIM_HORIZON');
  const once = await client.send(new GetRecordsCommand({ ShardIterator: it }));
  const again = await client.send(new GetRecordsCommand({ ShardIterator: it }));
  assert.deepEqual(again.Records!.map(text), once.Records!.map(text));
  assert.deepEqual((await client.send(new GetRecordsCommand({ ShardIterator: expireIterator(it, 290_000) }))).Records!.map(text), ['a', 'b']);
  await assert.rejects(client.send(new GetRecordsCommand({ ShardIterator: expireIterator(it) })), (err: Error) => {
    assert.equal(err.name, 'ExpiredIteratorException');
    assert.match(err.message, /^Iterator expired\. The iterator was created at time .+ UTC \d{4} while right now it is .+ which is further in the future than the tolerated delay of 300000 milliseconds\.$/);
    return true;
  });
});

test('no throughput limits: back-to-back GetRecords never throttle; Limit caps the records returned', async () => {
  const s = await stream(1);
  await putLines(client, s, Array.from({ length: 50 }, (_, i) => `x${i}`));
  const it = await iterator(s, 'shardId-000000000000', 'TRIM_HORIZON');
  for (let i = 0; i < 30; i++) assert.equal((await client.send(new GetRecordsCommand({ ShardIterator: it }))).Records?.length, 50);
  const limited = await client.send(new GetRecordsCommand({ ShardIterator: it, Limit: 7 }));
  assert.deepEqual(limited.Records!.map(text), Array.from({ length: 7 }, (_, i) => `x${i}`));
  const rest = await client.send(new GetRecordsCommand({ ShardIterator: limited.NextShardIterator! }));
  assert.equal(text(rest.Records![0]!), 'x7');
});
