import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { StorageError } from '../../src/errors.ts';
import { S3Storage } from '../../src/storage/s3-storage.ts';
import { startSwift, swiftS3Client, swiftSkipReason } from '../support/swift.ts';
import { recordCommands, s3StorageSuite, type MakeS3Storage } from './s3-storage-suite.ts';
import { storageContract } from './storage-contract.ts';

// OpenStack Swift with its s3api middleware: the most AWS-faithful S3 server these machines have.
// One private Swift for this file (test/support/swift.sh), a fresh bucket and client per storage.
const swift = await startSwift();

if (swift === null) {
  test('S3Storage on OpenStack Swift (s3api)', { skip: swiftSkipReason }, () => {});
} else {
  const make: MakeS3Storage = async (options = {}) => {
    const client = swiftS3Client(swift.endpoint, { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey }, swift.region);
    after(() => client.destroy());
    const bucket = await swift.newBucket();
    return { storage: new S3Storage({ bucket, client, prefix: options.prefix ?? 'lake/v1', partSizeBytes: options.partSizeBytes }), client, bucket };
  };

  storageContract('S3Storage (Swift)', async () => (await make()).storage, {
    conditionalWrites: false,
    skipReason: "Swift's s3api answers 501 NotImplemented to PutObject with If-None-Match; putIfAbsent's refusal is tested below and its logic against an S3 double in s3-storage.test.ts",
  });

  s3StorageSuite('S3Storage (Swift)', make, { listPageSize: 100 }); // swift.sh sets s3api's max_bucket_listing to 100

  test('S3Storage (Swift): putIfAbsent fails with a StorageError naming the missing conditional writes, and writes nothing', async () => {
    const { storage, client } = await make();
    const commands = recordCommands(client);
    await assert.rejects(storage.putIfAbsent('locks/one', 'first'), (err: unknown) => {
      assert.ok(err instanceof StorageError);
      assert.equal(err.retriable, false);
      assert.match(err.message, /does not implement conditional writes/);
      assert.match(err.message, /NotImplemented \(HTTP 501\)/);
      return true;
    });
    assert.equal(commands.filter((c) => c.command === 'PutObjectCommand').length, 1, 'one request, not retried');
    assert.equal(await storage.get('locks/one'), undefined);
  });

  test('Swift s3api as a reference: ETags agree between listing and HEAD, suffix ranges are honoured (s3rver gets ranges wrong)', async () => {
    const { storage, client, bucket } = await make();
    await storage.put('e/small', 'hello world');
    const raw = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'lake/v1/e/' }));
    const listed = raw.Contents ?? [];
    assert.deepEqual(listed.map((o) => [o.Key, o.Size, o.ETag]), [['lake/v1/e/small', 11, '"5eb63bbbe01eeed093cb22bb8f5acdc3"']]);
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'lake/v1/e/small' }));
    assert.equal(head.ETag, listed[0]!.ETag);
    const ranged = await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'lake/v1/e/small', Range: 'bytes=-5' }));
    assert.equal(await ranged.Body!.transformToString(), 'world', 'suffix ranges are honoured');
    assert.equal(ranged.ContentRange, 'bytes 6-10/11');
  });
}
