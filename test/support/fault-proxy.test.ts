import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { GetRecordsCommand, GetShardIteratorCommand, ListShardsCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { NETWORK_CODES, isRetriableSdkError, type SdkErrorShape } from '../../src/aws/sdk-errors.ts';
import {
  dropConnection,
  kinesisExpiredIterator,
  kinesisLimitExceeded,
  kinesisTarget,
  kinesisThrottle,
  s3Error,
  s3Operation,
  s3PreconditionFailed,
  startFaultProxy,
  type FaultProxy,
} from './fault-proxy.ts';
import { createStream, localKinesisClient, putLines, startKinesalite, type Kinesalite } from './kinesalite.ts';
import { localS3Client, s3rverBucket } from './s3rver.ts';

let kin: Kinesalite;
const proxies: FaultProxy[] = [];
const clients: Array<{ destroy(): void }> = [];

before(async () => {
  kin = await startKinesalite();
  await createStream(kin.client(), 'events', 1);
  await putLines(kin.client(), 'events', ['one', 'two', 'three']);
});
after(async () => {
  for (const c of clients) c.destroy();
  for (const p of proxies) await p.stop();
  await kin.stop();
});

async function proxy(target: string, decide: Parameters<typeof startFaultProxy>[1]): Promise<FaultProxy> {
  const p = await startFaultProxy(target, decide);
  proxies.push(p);
  return p;
}

function kinesisVia(p: FaultProxy, maxAttempts?: number): KinesisClient {
  const c = localKinesisClient(p.endpoint, maxAttempts === undefined ? {} : { maxAttempts });
  clients.push(c);
  return c;
}

async function iterator(client: KinesisClient): Promise<string> {
  const out = await client.send(new GetShardIteratorCommand({ StreamName: 'events', ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON' }));
  return out.ShardIterator!;
}

/** The rejection of `p`, which must reject. */
async function failure(p: Promise<unknown>): Promise<SdkErrorShape & Error> {
  try {
    await p;
  } catch (e) {
    return e as SdkErrorShape & Error;
  }
  assert.fail('expected the call to fail');
}

/** Throttles every 2nd GetRecords; everything else is forwarded. */
function throttleEverySecondGetRecords() {
  let getRecords = 0;
  return (req: { headers: import('node:http').IncomingHttpHeaders }) =>
    kinesisTarget(req) === 'GetRecords' && ++getRecords % 2 === 0 ? kinesisThrottle() : undefined;
}

test('a throttled GetRecords is ProvisionedThroughputExceededException without retries, and retried by default', async () => {
  const p = await proxy(kin.endpoint, throttleEverySecondGetRecords());
  const once = kinesisVia(p, 1);
  const it = await iterator(once);
  const first = await once.send(new GetRecordsCommand({ ShardIterator: it }));
  assert.equal(first.Records?.length, 3);
  const err = await failure(once.send(new GetRecordsCommand({ ShardIterator: it })));
  assert.equal(err.name, 'ProvisionedThroughputExceededException');
  assert.equal(err.$metadata?.httpStatusCode, 400);
  assert.match(err.message, /^Rate exceeded for shard shardId-000000000000/);
  assert.equal(isRetriableSdkError(err, new Set(['ProvisionedThroughputExceededException'])), true);
  assert.equal(p.stats.injected.kinesisThrottle, 1);

  p.setDecide(throttleEverySecondGetRecords());
  const retrying = kinesisVia(p);
  for (let i = 0; i < 4; i++) assert.equal((await retrying.send(new GetRecordsCommand({ ShardIterator: it }))).Records?.length, 3);
  assert.equal(p.stats.injected.kinesisThrottle, 4, 'one before, then the 2nd, 4th and 6th GetRecords, each retried once');
});

test('an expired iterator and a control-plane limit surface under their Kinesis names; only the limit is retried', async () => {
  const p = await proxy(kin.endpoint, (req) => {
    const op = kinesisTarget(req);
    return op === 'GetRecords' ? kinesisExpiredIterator() : op === 'ListShards' ? kinesisLimitExceeded('events') : undefined;
  });
  const client = kinesisVia(p);
  const expired = await failure(client.send(new GetRecordsCommand({ ShardIterator: await iterator(client) })));
  assert.equal(expired.name, 'ExpiredIteratorException');
  assert.match(expired.message, /^Iterator expired\. The iterator was created at time \w{3} \w{3} \d{2} [\d:]{8} UTC \d{4} while right now it is .* tolerated delay of 300000 milliseconds\.$/);
  assert.equal(p.stats.injected.kinesisExpiredIterator, 1, 'a client error is not retried');

  const limited = await failure(kinesisVia(p, 1).send(new ListShardsCommand({ StreamName: 'events' })));
  assert.equal(limited.name, 'LimitExceededException');
  assert.equal(limited.$metadata?.httpStatusCode, 400);
  let lists = 0;
  p.setDecide((req) => (kinesisTarget(req) === 'ListShards' && ++lists === 1 ? kinesisLimitExceeded('events') : undefined));
  assert.equal((await client.send(new ListShardsCommand({ StreamName: 'events' }))).Shards?.length, 1);
  assert.equal(lists, 2, 'LimitExceededException is retried by default');
});

test('a dropped connection is a network error without retries, and retried by default', async () => {
  const p = await proxy(kin.endpoint, (req) => (req.n === 1 ? dropConnection() : undefined));
  const err = await failure(kinesisVia(p, 1).send(new ListShardsCommand({ StreamName: 'events' })));
  assert.ok(typeof err.code === 'string' && NETWORK_CODES.has(err.code), `network error code, got ${err.name} ${err.code}: ${err.message}`);
  assert.equal(err.$metadata?.httpStatusCode, undefined);
  assert.equal(err.name, 'TimeoutError', 'the SDK names a socket hang up TimeoutError (code ECONNRESET)');

  p.setDecide((req) => (req.n === 2 ? dropConnection() : undefined));
  const out = await kinesisVia(p).send(new ListShardsCommand({ StreamName: 'events' }));
  assert.equal(out.Shards?.length, 1);
  assert.deepEqual(p.stats.injected, { drop: 2 });
});

test('a delayed request is forwarded after the delay; stats count forwarded and injected requests', async () => {
  const p = await proxy(kin.endpoint, (req) => (kinesisTarget(req) === 'ListShards' ? { name: 'slow', delayMs: 50 } : undefined));
  const client = kinesisVia(p, 1);
  assert.equal((await client.send(new ListShardsCommand({ StreamName: 'events' }))).Shards?.length, 1);
  assert.equal((await client.send(new GetRecordsCommand({ ShardIterator: await iterator(client) }))).Records?.length, 3);
  assert.deepEqual(p.stats, { forwarded: 3, injected: { slow: 1 } });
});

test('S3 through the proxy: 503 SlowDown and 500 InternalError surface by name without retries and are retried by default; large bodies pass', async () => {
  const { endpoint, bucket } = await s3rverBucket();
  let putObjects = 0;
  const p = await proxy(endpoint, (req) => {
    if (req.method !== 'PUT' || !req.url.includes('/k')) return undefined;
    putObjects++;
    return putObjects === 1 ? s3Error(503) : putObjects === 2 ? s3Error(500) : putObjects === 3 ? s3Error(503) : undefined;
  });
  const once = localS3Client(p.endpoint, { maxAttempts: 1 });
  clients.push(once);
  const put = (key: string, body: Uint8Array | string, c = once) => c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));

  const slow = await failure(put('k1', 'x'));
  assert.equal(slow.name, 'SlowDown');
  assert.equal(slow.$metadata?.httpStatusCode, 503);
  const internal = await failure(put('k2', 'x'));
  assert.equal(internal.name, 'InternalError');
  assert.equal(internal.$metadata?.httpStatusCode, 500);

  const retrying = localS3Client(p.endpoint);
  clients.push(retrying);
  const big = Buffer.alloc(24 * 1024 * 1024, 7);
  big.write('the start', 0);
  big.write('the end', big.length - 7);
  await put('k3', big, retrying); // the 503 on its first attempt is retried
  assert.deepEqual(p.stats.injected, { s3SlowDown: 2, s3InternalError: 1 });
  const got = await retrying.send(new GetObjectCommand({ Bucket: bucket, Key: 'k3' }));
  const bytes = await got.Body!.transformToByteArray();
  const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');
  assert.equal(md5(bytes), md5(big));
});

test('S3 through the proxy: a lost response took effect; a cut body fails the read; s3Operation names the requests', async () => {
  const { endpoint, bucket, client: direct } = await s3rverBucket();
  const ops: string[] = [];
  const p = await proxy(endpoint, (req) => {
    const { op, key } = s3Operation(req);
    ops.push(`${op} ${key}`);
    if (op === 'PutObject' && key === 'a/lost b') return { name: 'lost', dropResponse: true };
    if (op === 'GetObject' && key === 'a/lost b') return { name: 'cut', truncateBody: true };
    if (op === 'PutObjectIfAbsent') return s3PreconditionFailed();
    return undefined;
  });
  const once = localS3Client(p.endpoint, { maxAttempts: 1 });
  clients.push(once);
  const lost = await failure(once.send(new PutObjectCommand({ Bucket: bucket, Key: 'a/lost b', Body: 'x'.repeat(1000) })));
  assert.equal(lost.$metadata?.httpStatusCode, undefined, 'no answer reached the client');
  assert.ok(isRetriableSdkError(lost, new Set()), `a lost response is a retriable network error (${lost.name} ${lost.code})`);
  const stored = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: 'a/lost b' }));
  assert.equal(await stored.Body!.transformToString(), 'x'.repeat(1000), 'the write took effect');

  const cut = await once.send(new GetObjectCommand({ Bucket: bucket, Key: 'a/lost b' }));
  assert.equal(cut.ContentLength, 1000);
  await assert.rejects(cut.Body!.transformToByteArray(), 'reading a cut body fails, never yields a short body');

  const pre = await failure(once.send(new PutObjectCommand({ Bucket: bucket, Key: 'c', Body: 'y', IfNoneMatch: '*' })));
  assert.deepEqual([pre.name, pre.$metadata?.httpStatusCode], ['PreconditionFailed', 412]);
  await once.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'a/' }));
  await once.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: 'a/lost b' }] } }));
  assert.deepEqual(ops, ['PutObject a/lost b', 'GetObject a/lost b', 'PutObjectIfAbsent c', 'ListObjectsV2 ', 'DeleteObjects ']);
  assert.deepEqual(p.stats.injected, { lost: 1, cut: 1, s3PreconditionFailed: 1 });
});
