import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { writeTestInput } from '../support/data.ts';
import { startSwift, swiftSkipReason } from '../support/swift.ts';
import { runCli, tempDir } from '../support/tmp.ts';

// Swift's s3api has no conditional writes, which catalog commits and leases need: on a Swift lake the
// CLI must refuse with the reason instead of committing without exclusivity.
const swift = await startSwift();

test('ingest on an S3 lake whose service lacks conditional writes (Swift s3api) fails naming the limitation and commits nothing', { skip: swift === null ? swiftSkipReason : false }, async () => {
  const { endpoint, accessKeyId, secretAccessKey, region, bucket, client } = swift!;
  const dir = tempDir('swiftlake');
  const env = {
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_ACCESS_KEY_ID: accessKeyId,
    AWS_SECRET_ACCESS_KEY: secretAccessKey,
    AWS_REGION: region,
    TRIBUTARY_CACHE: `${dir}/cache`,
  };
  const { files } = writeTestInput(dir, 200, 67);
  const r = await runCli(['ingest', '--lake', `s3://${bucket}/lake`, ...files], { env });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /does not implement conditional writes \(PutObject with If-None-Match: \*\)/);
  assert.match(r.stderr, /NotImplemented \(HTTP 501\)/);
  const catalog = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'lake/_tributary/catalog/' }));
  assert.deepEqual((catalog.Contents ?? []).map((o) => o.Key), [], 'no catalog version was written');
});
