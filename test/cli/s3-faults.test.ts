/**
 * Issue 4's fault test: `tributary ingest` into an S3 lake on s3rver, and `tributary query` on it, through a proxy
 * that fails a fixed share of the requests — 500 InternalError, 503 SlowDown, connections dropped before the
 * request is forwarded, connections dropped after it took effect (the response lost), bodies cut mid-way — on
 * uploads, multipart parts, listings, gets, deletes and the embedded catalog's objects. The answers must still
 * equal the independent ground truth, every message_id once, dead letters exact.
 *
 * The proxy also gives s3rver the conditional writes it lacks: a PutObject with `If-None-Match: *` on a key that
 * exists is answered 412 PreconditionFailed, as Amazon S3 answers it. So a catalog commit whose response was lost
 * is retried by the SDK into a 412, exactly as on S3, and the catalog must recognise its own earlier write.
 *
 * Faults are chosen by a seeded generator, and no request (same method and URL) is failed more than twice in a
 * row, so every request succeeds within the SDK's attempts: the test is about what the code does with faults,
 * never about luck. The first attempt of every multipart request (create, each part, complete) fails, so a
 * multipart upload is never left unfaulted.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { test } from 'node:test';
import { rng } from '../../src/sample/generate.ts';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { dropConnection, s3Error, s3Operation, s3PreconditionFailed, startFaultProxy, type Fault, type ProxiedRequest } from '../support/fault-proxy.ts';
import { expectedAnswers } from '../support/ground-truth.ts';
import { writeTestInput } from '../support/data.ts';
import { assertGroundTruth, cliQuery, lakeAnswers } from '../support/lake-answers.ts';
import { localS3Client, rerunWithOpenSslLegacyProviderIfNeeded, s3rverBucket, s3rverEnv } from '../support/s3rver.ts';
import { runCli, tempDir } from '../support/tmp.ts';

rerunWithOpenSslLegacyProviderIfNeeded(); // s3rver (in this process) needs DES for its listing tokens

/** Share of requests failed (besides the first attempt of every multipart request). */
const FAULT_RATE = 1 / 8;
/** Most consecutive faults on one request (method + URL); the SDK makes 5 attempts. */
const MAX_STREAK = 2;
const MULTIPART_OPS = new Set(['CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload']);
/**
 * Operations whose response may be lost after they took effect: S3 makes their retry harmless (overwrites with
 * the same bytes, reads, deletes of what is gone, 412 for a conditional create). CompleteMultipartUpload is left
 * out: s3rver forgets an upload once completed, so its retry fails with NoSuchUpload, a stand-in artefact.
 */
const LOSE_RESPONSE_OK = new Set(['PutObject', 'PutObjectIfAbsent', 'UploadPart', 'GetObject', 'HeadObject', 'ListObjectsV2', 'DeleteObject', 'DeleteObjects', 'CreateMultipartUpload']);
const CUT_BODY_OK = new Set(['GetObject', 'ListObjectsV2']);
const KINDS = ['InternalError', 'SlowDown', 'drop', 'dropResponse', 'truncate'] as const;
type Kind = (typeof KINDS)[number];

interface FaultLog {
  /** kind → count */
  kinds: Record<string, number>;
  /** S3 operation → count */
  ops: Record<string, number>;
  /** Faults on the embedded catalog's objects (`_tributary/catalog/`). */
  catalog: number;
  /** Conditional creates answered 412 because the object existed (not faults: S3's semantics). */
  preconditionFailed: number;
  total: number;
}

function newLog(): FaultLog {
  return { kinds: {}, ops: {}, catalog: 0, preconditionFailed: 0, total: 0 };
}

/**
 * The proxy's rule: S3's conditional create emulated in front of s3rver, then faults at FAULT_RATE (and on the
 * first attempt of each multipart request), at most MAX_STREAK in a row per request, each of the applicable kind
 * injected least so far (so every kind occurs early). Counts go to `log()`.
 */
function faultRule(direct: S3Client, seed: number): { decide: (req: ProxiedRequest) => Promise<Fault | undefined>; log: () => FaultLog } {
  const rnd = rng(seed); // seeded, so a run's choices do not depend on Math.random
  const streak = new Map<string, number>();
  const seen = new Set<string>();
  let log = newLog();
  const decide = async (req: ProxiedRequest): Promise<Fault | undefined> => {
    const { op, bucket, key } = s3Operation(req);
    const sig = `${req.method} ${req.url}`;
    const firstMultipart = MULTIPART_OPS.has(op) && !seen.has(sig);
    seen.add(sig);
    const n = streak.get(sig) ?? 0;
    const roll = rnd();
    if (n < MAX_STREAK && (firstMultipart || roll < FAULT_RATE)) {
      streak.set(sig, n + 1);
      const kinds = KINDS.filter((k) => (k === 'dropResponse' ? LOSE_RESPONSE_OK.has(op) : k === 'truncate' ? CUT_BODY_OK.has(op) : true));
      const least = Math.min(...kinds.map((k) => log.kinds[k] ?? 0));
      const pool = kinds.filter((k) => (log.kinds[k] ?? 0) === least);
      const kind: Kind = pool[Math.floor(rnd() * pool.length)]!;
      log.kinds[kind] = (log.kinds[kind] ?? 0) + 1;
      log.ops[op] = (log.ops[op] ?? 0) + 1;
      if (key.includes('_tributary/catalog/')) log.catalog++;
      log.total++;
      // A lost response on a conditional create that is going to fail anyway is just a 412 lost: fine too.
      if (kind === 'InternalError') return { ...s3Error(500), name: `${kind} ${op}` };
      if (kind === 'SlowDown') return { ...s3Error(503), name: `${kind} ${op}` };
      if (kind === 'drop') return { ...dropConnection(), name: `${kind} ${op}` };
      if (kind === 'dropResponse') return await conditional(op, bucket, key) ?? { name: `${kind} ${op}`, dropResponse: true };
      return { name: `${kind} ${op}`, truncateBody: true };
    }
    streak.delete(sig);
    return conditional(op, bucket, key);
  };
  /** 412 for a conditional create of a key that exists (checked on s3rver directly, signed by the SDK). */
  const conditional = async (op: string, bucket: string, key: string): Promise<Fault | undefined> => {
    if (op !== 'PutObjectIfAbsent') return undefined;
    try {
      await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
      throw err;
    }
    log.preconditionFailed++;
    return s3PreconditionFailed();
  };
  return {
    decide,
    log: () => {
      const out = log;
      log = newLog();
      return out;
    },
  };
}

/** `count` track events with ~24 KB of incompressible text each, all on one day: one Parquet file above 5 MiB. */
function blobLines(count: number): string[] {
  return Array.from({ length: count }, (_, i) =>
    JSON.stringify({
      type: 'track',
      event: 'Blob Uploaded',
      messageId: `blob-${i}`,
      anonymousId: `blob-user-${i % 37}`,
      receivedAt: new Date(Date.UTC(2026, 10, 24, 8, 0, 0) + i * 1000).toISOString(),
      properties: { blob: randomBytes(18 * 1024).toString('base64') },
    }),
  );
}

async function readAll(client: S3Client, bucket: string, prefix: string): Promise<Array<{ key: string; text: string }>> {
  const out: Array<{ key: string; text: string }> = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      const body = await client.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
      out.push({ key: o.Key!, text: await body.Body!.transformToString() });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

test('ingest and query through 500s, 503 SlowDown, dropped connections, lost responses and cut bodies end exact', async (t) => {
  const dir = tempDir('s3faults');
  const { endpoint, bucket } = await s3rverBucket();
  const direct = localS3Client(endpoint);
  const rule = faultRule(direct, 4);
  const proxy = await startFaultProxy(endpoint, rule.decide);
  try {
    const env: NodeJS.ProcessEnv = {
      ...s3rverEnv(proxy.endpoint, `${dir}/cache`),
      // S3's smallest part, so the big file below is a multipart upload of 2–3 parts.
      TRIBUTARY_S3_PART_SIZE: '5MiB',
    };
    const lake = `s3://${bucket}/lake`;
    const { files, lines } = writeTestInput(dir, 1500, 81);
    const blobs = blobLines(560);
    const blobFile = `${dir}/blobs.ndjson`;
    appendFileSync(blobFile, blobs.join('\n') + '\n');
    const expected = await expectedAnswers([...lines, ...blobs], dir);
    assert.ok(expected.invalid > 10, 'the input has invalid records to dead-letter');

    // Run 1: the ordinary events into many small files (many commits: catalog, guards, uploads).
    const badPart = await runCli(['ingest', '--lake', lake, files[0]!], { env: { ...env, TRIBUTARY_S3_PART_SIZE: '1MB' } });
    assert.equal(badPart.code, 2, badPart.stderr);
    assert.match(badPart.stderr, /TRIBUTARY_S3_PART_SIZE: "1MB" is not valid; expected a multipart upload part size from 5MiB/);
    rule.log(); // (nothing reached S3, but start the count afresh)

    const t0 = performance.now();
    const first = await runCli(['ingest', '--lake', lake, '--json', '--target-file-size', '8KB', '--max-open-partitions', '3', ...files], { env });
    assert.equal(first.code, 0, first.stderr);
    // Run 2: the blobs into one file above the part size: a multipart upload, its parts failed too.
    const second = await runCli(['ingest', '--lake', lake, '--json', '--target-file-size', '64MB', blobFile], { env });
    assert.equal(second.code, 0, second.stderr);
    const ingestFaults = rule.log();
    const [a, b] = [JSON.parse(first.stdout), JSON.parse(second.stdout)];
    assert.equal(a.written + b.written, expected.valid);
    assert.equal(a.deadLettered + b.deadLettered, expected.invalid);
    assert.equal(b.files, 1, 'the blobs are one file');
    assert.ok(b.bytes > 5 * 1024 * 1024, `the blob file (${b.bytes} B) is above the 5 MiB part size`);

    // The faults really happened, of every kind, on every kind of request the brief names.
    for (const k of KINDS) assert.ok((ingestFaults.kinds[k] ?? 0) > 0, `no ${k} injected during ingest: ${JSON.stringify(ingestFaults)}`);
    for (const op of ['PutObject', 'PutObjectIfAbsent', 'ListObjectsV2', 'GetObject', 'DeleteObjects', 'CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload']) {
      assert.ok((ingestFaults.ops[op] ?? 0) > 0, `no fault on ${op} during ingest: ${JSON.stringify(ingestFaults)}`);
    }
    assert.ok(ingestFaults.catalog > 0, 'faults on the catalog objects');
    t.diagnostic(`ingest faults: ${JSON.stringify(ingestFaults)} ${proxy.stats.forwarded} forwarded ${a.files} files ${(performance.now() - t0) / 1000}s`);
    assert.ok(ingestFaults.total >= 40, `a meaningful number of faults (${ingestFaults.total})`);

    // Dead letters exact: every refused record once, read from s3rver directly (not through the proxy).
    const dead = (await readAll(direct, bucket, 'lake/_deadletter/')).flatMap((o) => o.text.split('\n').filter((l) => l !== ''));
    assert.equal(dead.length, expected.invalid);
    const ids = dead.map((l) => {
      const d = JSON.parse(l) as { shard: string; position: string };
      return `${d.shard}:${d.position}`;
    });
    assert.equal(new Set(ids).size, ids.length, 'no dead letter twice');
    // No object left behind by a failed upload, and every data file in the catalog's partitions.
    const objects = await readAll(direct, bucket, 'lake/tracks/');
    assert.ok(objects.every((o) => o.key.endsWith('.parquet')), 'only Parquet files under tracks/');

    // Queries through the faulty proxy too, from a cold cache: catalog reads, listings and file downloads fail.
    const got = await lakeAnswers(lake, env);
    const queryFaults = rule.log();
    t.diagnostic(`query faults: ${JSON.stringify(queryFaults)} ${(performance.now() - t0) / 1000}s`);
    assertGroundTruth(got, expected);
    assert.equal(got.perEvent['Blob Uploaded'], blobs.length);
    for (const op of ['GetObject', 'ListObjectsV2']) assert.ok((queryFaults.ops[op] ?? 0) > 0, `no fault on ${op} during queries: ${JSON.stringify(queryFaults)}`);
    assert.ok((queryFaults.kinds.truncate ?? 0) > 0, 'bodies were cut during queries');

    // Ingesting everything again, still through faults, changes nothing.
    const again = await runCli(['ingest', '--lake', lake, '--json', ...files, blobFile], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual([JSON.parse(again.stdout).written, JSON.parse(again.stdout).deadLettered], [0, 0]);
    assert.ok(rule.log().total > 0);
    const [count] = await cliQuery(lake, 'SELECT (SELECT count(*) FROM tracks) + (SELECT count(*) FROM pages) + (SELECT count(*) FROM identifies) + (SELECT count(*) FROM screens) + (SELECT count(*) FROM groups) + (SELECT count(*) FROM aliases) AS n', env);
    assert.equal(count!.n, expected.valid);
    assert.ok(proxy.stats.forwarded > 0);
  } finally {
    await proxy.stop();
    direct.destroy();
  }
});
