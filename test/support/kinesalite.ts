/**
 * kinesalite 3.3.3 in this process, for tests, plus stream helpers (create, put, split, merge, forge an old iterator).
 *
 * What kinesalite does, asserted in kinesalite.test.ts unless marked (source), which means read in its code only:
 * - ListShards returns every shard of the stream, open and closed, in one page: MaxResults and ShardFilter are
 *   ignored and NextToken is never returned. ExclusiveStartShardId works. A ListShards WITH a NextToken (source)
 *   throws inside kinesalite's request handler, an uncaught exception that kills the test process: never send one.
 * - Shard ids count up from shardId-000000000000 in creation order. SplitShard appends two children with
 *   ParentShardId (low half of the hash range first), MergeShards one child with ParentShardId and
 *   AdjacentParentShardId spanning both. Parents stay listed, with SequenceNumberRange.EndingSequenceNumber set.
 *   Here (updateStreamMs 0) a reshard completes on the next timer tick; waitActive() covers it.
 * - GetRecords on a closed shard returns its remaining records, then, at most two calls later, a response with no
 *   NextShardIterator (and no records); an iterator from LATEST on a closed shard ends at the first call.
 *   GetRecords never returns ChildShards: find children through ListShards. MillisBehindLatest is 0 on open shards.
 * - Iterators are stateless and reusable. Each encodes its creation time; GetRecords fails with
 *   ExpiredIteratorException once that is more than 300 000 ms old. expireIterator() forges an old one.
 * - GetShardIterator supports TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER and AT_TIMESTAMP
 *   (arrival times are kept to the millisecond). AT_TIMESTAMP later than the shard's last record NEVER ANSWERS: the
 *   request hangs until the client's timeout, so do not use it past the tip. A timestamp in the future is
 *   InvalidArgumentException.
 * - No throughput limits: GetRecords never throttles (no 5 calls/s per shard) and returns up to Limit (default
 *   10 000) records whatever their size (source); PutRecords never reports failed entries (source). Inject throttling and partial
 *   failures with test/support/fault-proxy.ts.
 * - Sequence numbers are decimal strings, increasing within a shard. Records go to the open shard whose hash key
 *   range holds MD5(partition key) (or ExplicitHashKey), as in AWS.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  KinesisClient,
  ListShardsCommand,
  MergeShardsCommand,
  PutRecordsCommand,
  SplitShardCommand,
  type PutRecordsRequestEntry,
  type Shard,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';

/** kinesalite's factory (the package ships no types): an http.Server with a LevelDB-in-memory store. */
type KinesaliteFactory = (options: { createStreamMs: number; deleteStreamMs: number; updateStreamMs: number; shardLimit: number }) => Server;
const require = createRequire(import.meta.url);
const kinesalite = require('kinesalite') as KinesaliteFactory;
/** The AES key and IV kinesalite encrypts shard iterators with (db/index.js). */
const kinesaliteDb = require('kinesalite/db') as { ITERATOR_PWD_KEY: Buffer; ITERATOR_PWD_IV: Buffer };

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface Kinesalite {
  /** e.g. http://127.0.0.1:40123 */
  endpoint: string;
  /** A new client for `endpoint` (destroyed by stop()). */
  client(options?: LocalKinesisOptions): KinesisClient;
  /** Closes every connection (hung AT_TIMESTAMP requests included) and the server. Idempotent. */
  stop(): Promise<void>;
}

export interface LocalKinesisOptions {
  /** SDK attempts per call (1 = no retries). Default: the SDK's (3). */
  maxAttempts?: number;
  /** A request not answered within this many ms fails with TimeoutError (code ETIMEDOUT). Default 30 s. */
  requestTimeout?: number;
}

/**
 * An SDK client for a local Kinesis-API endpoint (kinesalite, or a proxy in front of it). kinesalite needs the
 * SDK's NodeHttpHandler, an explicit region and credentials (it checks that a signature is present, not its value).
 */
export function localKinesisClient(endpoint: string, options: LocalKinesisOptions = {}): KinesisClient {
  return new KinesisClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    // Without throwOnRequestTimeout, @smithy/node-http-handler 4 only logs a warning when requestTimeout passes.
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: options.requestTimeout ?? 30_000, throwOnRequestTimeout: true }),
    ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }),
  });
}

/** Starts kinesalite in this process on 127.0.0.1 (a free port), with instant stream changes and 200 shards allowed. */
export async function startKinesalite(): Promise<Kinesalite> {
  const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 200 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clients: KinesisClient[] = [];
  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    client(options) {
      const c = localKinesisClient(endpoint, options);
      clients.push(c);
      return c;
    },
    stop() {
      stopped ??= (async () => {
        for (const c of clients) c.destroy();
        server.closeAllConnections();
        await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
      })();
      return stopped;
    },
  };
}

/** Creates a stream with `shardCount` shards and waits until it is ACTIVE. */
export async function createStream(client: KinesisClient, name: string, shardCount: number): Promise<void> {
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shardCount }));
  await waitActive(client, name);
}

/** Waits until the stream is ACTIVE (after a create, split or merge). */
export async function waitActive(client: KinesisClient, stream: string): Promise<void> {
  for (let i = 0; ; i++) {
    const { StreamDescriptionSummary: s } = await client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
    if (s?.StreamStatus === 'ACTIVE') return;
    if (i >= 500) throw new Error(`stream ${stream} still ${s?.StreamStatus} after ${i} polls`);
    await sleep(10);
  }
}

/** Every shard of the stream, open and closed, in shard id order (kinesalite answers in one page). */
export async function listShards(client: KinesisClient, stream: string): Promise<Shard[]> {
  const { Shards } = await client.send(new ListShardsCommand({ StreamName: stream }));
  return Shards ?? [];
}

const MAX_ENTRIES = 500;
const MAX_REQUEST_BYTES = 5 * 1024 * 1024;
const MAX_PUT_ATTEMPTS = 10;

/**
 * Puts `payloads` (strings as UTF-8) with PutRecords in requests of at most 500 entries and 5 MiB (data plus
 * partition keys), retrying only the entries a response reports failed, with a short backoff. Returns where each
 * payload went, in input order. The default partition key of payload i is `pk-${i}`.
 */
export async function putLines(
  client: KinesisClient,
  stream: string,
  payloads: Array<string | Uint8Array>,
  opts: { partitionKey?: (i: number) => string } = {},
): Promise<Array<{ shardId: string; sequenceNumber: string }>> {
  const partitionKey = opts.partitionKey ?? ((i: number) => `pk-${i}`);
  const entries = payloads.map((p, i) => {
    const Data = typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
    const PartitionKey = partitionKey(i);
    return { entry: { Data, PartitionKey } satisfies PutRecordsRequestEntry, bytes: Data.length + Buffer.byteLength(PartitionKey) };
  });
  const results: Array<{ shardId: string; sequenceNumber: string }> = new Array(payloads.length);
  let pending: number[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    if (pending.length > 0) await putChunk(client, stream, pending, (i) => entries[i]!.entry, results);
    pending = [];
    pendingBytes = 0;
  };
  for (let i = 0; i < entries.length; i++) {
    const { bytes } = entries[i]!;
    if (pending.length === MAX_ENTRIES || pendingBytes + bytes > MAX_REQUEST_BYTES) await flush();
    pending.push(i);
    pendingBytes += bytes;
  }
  await flush();
  return results;
}

async function putChunk(
  client: KinesisClient,
  stream: string,
  indexes: number[],
  entry: (i: number) => PutRecordsRequestEntry,
  results: Array<{ shardId: string; sequenceNumber: string }>,
): Promise<void> {
  let todo = indexes;
  for (let attempt = 1; todo.length > 0; attempt++) {
    const out = await client.send(new PutRecordsCommand({ StreamName: stream, Records: todo.map(entry) }));
    const failed: number[] = [];
    let lastError = '';
    todo.forEach((index, k) => {
      const r = out.Records?.[k];
      if (r?.ShardId && r.SequenceNumber && !r.ErrorCode) results[index] = { shardId: r.ShardId, sequenceNumber: r.SequenceNumber };
      else {
        failed.push(index);
        lastError = `${r?.ErrorCode}: ${r?.ErrorMessage}`;
      }
    });
    if (failed.length > 0 && attempt >= MAX_PUT_ATTEMPTS) {
      throw new Error(`putLines: ${failed.length} records still failing after ${attempt} attempts (${lastError})`);
    }
    if (failed.length > 0) await sleep(Math.min(1_000, 25 * 2 ** attempt));
    todo = failed;
  }
}

/** Splits a shard at the middle of its hash key range, waits until ACTIVE, and returns the two children (low, high). */
export async function splitShard(client: KinesisClient, stream: string, shardId: string): Promise<[string, string]> {
  const shard = (await listShards(client, stream)).find((s) => s.ShardId === shardId);
  if (!shard?.HashKeyRange) throw new Error(`splitShard: no shard ${shardId} in ${stream}`);
  const start = BigInt(shard.HashKeyRange.StartingHashKey!);
  const end = BigInt(shard.HashKeyRange.EndingHashKey!);
  const middle = (start + end + 1n) / 2n;
  await client.send(new SplitShardCommand({ StreamName: stream, ShardToSplit: shardId, NewStartingHashKey: middle.toString() }));
  await waitActive(client, stream);
  const children = (await listShards(client, stream)).filter((s) => s.ParentShardId === shardId && !s.AdjacentParentShardId);
  children.sort((a, b) => (BigInt(a.HashKeyRange!.StartingHashKey!) < BigInt(b.HashKeyRange!.StartingHashKey!) ? -1 : 1));
  return [children[0]!.ShardId!, children[1]!.ShardId!];
}

/** Merges two adjacent shards (`a` below `b` in hash key order), waits until ACTIVE, and returns the child. */
export async function mergeShards(client: KinesisClient, stream: string, a: string, b: string): Promise<string> {
  await client.send(new MergeShardsCommand({ StreamName: stream, ShardToMerge: a, AdjacentShardToMerge: b }));
  await waitActive(client, stream);
  const child = (await listShards(client, stream)).find((s) => s.ParentShardId === a && s.AdjacentParentShardId === b);
  if (!child?.ShardId) throw new Error(`mergeShards: no child of ${a} and ${b} in ${stream}`);
  return child.ShardId;
}

/**
 * The same kinesalite shard iterator with its creation time moved `ageMs` into the past (default: just past the
 * 300 000 ms kinesalite tolerates), so that GetRecords answers ExpiredIteratorException without waiting 5 minutes.
 */
export function expireIterator(iterator: string, ageMs = 300_001): string {
  const raw = Buffer.from(iterator, 'base64');
  const decipher = createDecipheriv('aes-256-cbc', kinesaliteDb.ITERATOR_PWD_KEY, kinesaliteDb.ITERATOR_PWD_IV);
  const pieces = Buffer.concat([decipher.update(raw.subarray(8)), decipher.final()]).toString('utf8').split('/');
  // pieces: creation time (14 digits, ms), stream, shard id, sequence number, padding.
  pieces[0] = String(Number(pieces[0]) - ageMs).padStart(14, '0');
  const cipher = createCipheriv('aes-256-cbc', kinesaliteDb.ITERATOR_PWD_KEY, kinesaliteDb.ITERATOR_PWD_IV);
  return Buffer.concat([raw.subarray(0, 8), cipher.update(pieces.join('/'), 'utf8'), cipher.final()]).toString('base64');
}
