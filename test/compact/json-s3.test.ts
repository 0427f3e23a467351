import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { listJsonInputs } from '../../src/compact/json-to-parquet.ts';
import { EmbeddedCatalog } from '../../src/catalog/embedded-catalog.ts';
import { openLocalLake } from '../../src/lake.ts';
import { S3Storage } from '../../src/storage/s3-storage.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { segmentLayout } from '../support/data.ts';
import { expectedAnswers } from '../support/ground-truth.ts';
import { assertGroundTruth, cliQuery, lakeAnswers } from '../support/lake-answers.ts';
import { rerunWithOpenSslLegacyProviderIfNeeded, s3rverBucket, s3rverEnv } from '../support/s3rver.ts';
import { runCli, tempDir } from '../support/tmp.ts';

rerunWithOpenSslLegacyProviderIfNeeded(); // s3rver (in this process) needs DES for its listing tokens

/** Uploads every file under `root` to `s3://bucket/<prefix>/<relative path>`. */
async function upload(client: S3Client, bucket: string, prefix: string, root: string, files: string[]): Promise<void> {
  for (const f of files) {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/${path.relative(root, f).split(path.sep).join('/')}`, Body: readFileSync(f) }));
  }
}

/** Committed data files of a lake by partition-relative name, with their sizes. */
async function committed(lake: string | S3Storage): Promise<string[]> {
  const { storage, catalog } = typeof lake === 'string' ? openLocalLake(lake) : { storage: lake, catalog: new EmbeddedCatalog(lake, 'tributary') };
  const out: string[] = [];
  for (const t of await catalog.listTables()) for (const f of await listCommittedFiles(storage, catalog, t.name)) out.push(f.key);
  return out.sort();
}

test('a Segment-layout backfill in S3 converts to exactly the ground truth, the same files as a local copy; twice changes nothing', async () => {
  const dir = tempDir('jsons3');
  const { endpoint, bucket, client } = await s3rverBucket();
  const env = s3rverEnv(endpoint, `${dir}/cache`);
  const lines = [...sampleLines({ count: 8_000, seed: 47, invalidRate: 0.02 })];
  const files = segmentLayout(`${dir}/raw`, lines, 3);
  // An undated event: dated by its day directory, in S3 as locally.
  const day = Date.UTC(2026, 9, 5);
  const undated = `${dir}/raw/segment-logs/s2/${day}/part-0.gz`;
  mkdirSync(path.dirname(undated), { recursive: true });
  writeFileSync(undated, gzipSync(JSON.stringify({ type: 'track', event: 'Undated', anonymousId: 'a', messageId: 'u1' }) + '\n'));
  files.push(undated);
  await upload(client, bucket, 'exports', `${dir}/raw`, files);
  // Not inputs: hidden names and directories, other extensions.
  for (const key of ['exports/segment-logs/_tmp/x.gz', 'exports/segment-logs/.hidden.gz', 'exports/segment-logs/README.txt']) {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'not an input' }));
  }
  // The oracle sees it with the receivedAt its day directory gives it.
  const expected = await expectedAnswers([...lines, JSON.stringify({ type: 'track', event: 'Undated', anonymousId: 'a', messageId: 'u1', receivedAt: new Date(day).toISOString() })], dir);
  const from = `s3://${bucket}/exports/segment-logs`;

  const dry = await runCli(['compact', 'json', '--from', from, '--lake', `${dir}/lake-s3`, '--dry-run'], { env });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(`^would convert ${from}/s2/${day}/part-0\\.gz \\(`, 'm'));
  assert.match(dry.stdout, /^plan: 10 input files \(.*\), all read: the counts are exact$/m);
  assert.match(dry.stdout, new RegExp(`^dry run: ${(expected.valid + expected.invalid).toLocaleString('en-US')} events \\(${expected.invalid.toLocaleString('en-US')} invalid, to the dead letters; 0 already in the lake\\) → `, 'm'));
  const dryJson = JSON.parse((await runCli(['compact', 'json', '--from', from, '--lake', `${dir}/lake-s3`, '--dry-run', '--json'], { env })).stdout);
  assert.deepEqual([dryJson.inputs, dryJson.inputBytes], [10, files.reduce((a, f) => a + readFileSync(f).length, 0)]);
  // The undated event is planned into its day directory's partition, as the conversion dates it.
  assert.ok(dryJson.partitions.some((p: { table: string; values: string[] }) => p.table === 'tracks' && p.values[0] === 'dt=2026-10-05'));
  assert.equal(readdirSync(dir).includes('lake-s3'), false, 'a dry run creates nothing');

  // From S3 into an S3 lake (in the same bucket) and into a local lake.
  const s3Lake = `s3://${bucket}/lake`;
  const r = await runCli(['compact', 'json', '--from', from, '--lake', s3Lake, '--json', '--target-file-size', '32KB'], { env });
  assert.equal(r.code, 0, r.stderr);
  const stats = JSON.parse(r.stdout);
  assert.deepEqual([stats.inputs, stats.written, stats.deadLettered], [10, expected.valid, expected.invalid]);
  assertGroundTruth(await lakeAnswers(s3Lake, env), expected);
  assert.deepEqual(await cliQuery(s3Lake, "SELECT strftime(dt, '%Y-%m-%d') AS d, CAST(received_at AS VARCHAR) AS r FROM tracks WHERE event = 'Undated'", env), [{ d: '2026-10-05', r: '2026-10-05 00:00:00' }]);
  const again = JSON.parse((await runCli(['compact', 'json', '--from', from, '--lake', s3Lake, '--json'], { env })).stdout);
  assert.deepEqual([again.written, again.deadLettered, again.skipped], [0, 0, expected.valid + expected.invalid]);

  // The same files as converting the local copy; and each run skips what the other committed.
  const local = `${dir}/lake-local`;
  assert.equal((await runCli(['compact', 'json', '--from', `${dir}/raw/segment-logs`, '--lake', local, '--target-file-size', '32KB'])).code, 0);
  const fromLocal = await committed(local);
  assert.ok(fromLocal.length > 10);
  assert.deepEqual(await committed(new S3Storage({ bucket, prefix: 'lake', client })), fromLocal);
  const cross = JSON.parse((await runCli(['compact', 'json', '--from', from, '--lake', local, '--json'], { env })).stdout);
  assert.deepEqual([cross.written, cross.deadLettered], [0, 0]);
  assert.deepEqual(await committed(local), fromLocal);
  assert.equal(readdirSync(`${local}/_tributary/spool`).filter((n) => n.startsWith('json-')).length, 0, 'the downloaded copies are gone');
});

test('an S3 source is listed through the Storage port; bad or empty locations fail naming them', async () => {
  const dir = tempDir('jsons3bad');
  const { endpoint, bucket, client } = await s3rverBucket();
  const env = s3rverEnv(endpoint, `${dir}/cache`);
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'in/a/1.ndjson', Body: '{}\n' }));
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'in/a/2.json.gz', Body: gzipSync('{}\n') }));
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'inside/3.ndjson', Body: '{}\n' }));
  const inputs = await listJsonInputs(`s3://${bucket}/in/`, { storage: new S3Storage({ bucket, prefix: 'in', client }) });
  assert.deepEqual(inputs.map((i) => [i.path, i.bytes]), [[`s3://${bucket}/in/a/1.ndjson`, 3], [`s3://${bucket}/in/a/2.json.gz`, gzipSync('{}\n').length]]);
  assert.ok(inputs.every((i) => typeof i.object?.etag === 'string'));

  const badUri = await runCli(['compact', 'json', '--from', 's3://No_Such', '--lake', `${dir}/lake`], { env });
  assert.equal(badUri.code, 2);
  assert.match(badUri.stderr, /"No_Such"/);
  const empty = await runCli(['compact', 'json', '--from', `s3://${bucket}/nothing-here`, '--lake', `${dir}/lake`], { env });
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /no raw JSON files/);
  const missing = await runCli(['compact', 'json', '--from', 's3://no-such-bucket-here/x', '--lake', `${dir}/lake`], { env });
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /s3:\/\/no-such-bucket-here/);
});
