import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { StorageError } from '../../src/errors.ts';
import { S3Storage } from '../../src/storage/s3-storage.ts';
import { tempDir } from '../support/tmp.ts';

const MiB = 1024 * 1024;

/** An S3Storage on a fresh, empty bucket of the server under test, with the client it uses. */
export type MakeS3Storage = (options?: { prefix?: string; partSizeBytes?: number }) => Promise<{ storage: S3Storage; client: S3Client; bucket: string }>;

export interface S3SuiteOptions {
  /** s3rver answers 500 to DeleteObjects of two or more keys (after deleting them): S3Storage falls back to single deletes. */
  deleteObjectsAnswers500?: boolean;
  /** The most keys the server returns in one ListObjectsV2 page (S3's 1,000 unless configured lower). */
  listPageSize?: number;
}

let recorderSeq = 0;

/** Records the SDK command names `client` sends from now on (and their inputs). */
export function recordCommands(client: S3Client): Array<{ command: string; input: Record<string, unknown> }> {
  const seen: Array<{ command: string; input: Record<string, unknown> }> = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      seen.push({ command: context.commandName ?? '?', input: args.input as Record<string, unknown> });
      return next(args);
    },
    { step: 'initialize', name: `recordCommands${++recorderSeq}` },
  );
  return seen;
}

/** Runs `fn` over `items` with at most `concurrency` calls in flight. */
export async function inPool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/**
 * S3Storage behaviour beyond the Storage contract that only a real S3-API server can show (prefixes,
 * multipart uploads, paginated listing, batch deletes, key encoding); run on every server the tests have.
 */
export function s3StorageSuite(name: string, make: MakeS3Storage, options: S3SuiteOptions = {}): void {
  test(`${name}: keeps every object under its prefix and sees nothing outside it`, async () => {
    const { storage, client, bucket } = await make({ prefix: 'lake/v1' });
    assert.equal(storage.root, `s3://${bucket}/lake/v1`);
    assert.equal(storage.localPath('t/x'), undefined);
    await storage.put('t/x', 'x');
    await storage.put('t/./y//z', 'z'); // '.' and empty segments collapse, as under LocalStorage
    await storage.put('t/q/../w', 'w');
    const outside = new S3Storage({ bucket, client, prefix: 'lake' });
    await outside.put('v2/other', 'o');
    await outside.put('v1x/other', 'o');
    const raw = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
    assert.deepEqual(
      (raw.Contents ?? []).map((o) => o.Key),
      ['lake/v1/t/w', 'lake/v1/t/x', 'lake/v1/t/y/z', 'lake/v1x/other', 'lake/v2/other'],
    );
    assert.deepEqual((await storage.list('', { recursive: true })).map((o) => o.key), ['t/w', 't/x', 't/y/z']);
    assert.deepEqual((await storage.list('t')).map((o) => o.key), ['t/w', 't/x']);
    assert.deepEqual((await outside.list('')).map((o) => o.key), []);
    await assert.rejects(storage.get('t/../../x'), (err: unknown) => err instanceof StorageError && /outside/.test(err.message));
    await assert.rejects(storage.put('/abs', 'x'), /outside/);
    await assert.rejects(storage.list('..'), /outside/);
    await assert.rejects(storage.delete(['t/x', '../../escape']), /outside/);
    assert.equal((await storage.get('t/x'))!.toString(), 'x', 'a refused delete deletes nothing');
    await assert.rejects(storage.put('t/..', 'x'), /names the root/);
  });

  test(`${name}: putFile uploads a 12 MiB file in 5 MiB parts byte-exact and consumes the local file`, async () => {
    const { storage, client } = await make({ partSizeBytes: 5 * MiB });
    const commands = recordCommands(client);
    const dir = tempDir('s3put');
    const data = randomBytes(12 * MiB);
    writeFileSync(`${dir}/spooled.parquet`, data);
    await storage.putFile('tbl/dt=2026-01-01/f.parquet', `${dir}/spooled.parquet`);
    assert.equal(existsSync(`${dir}/spooled.parquet`), false, 'the local file is consumed');
    const names = commands.map((c) => c.command);
    assert.equal(names.filter((n) => n === 'CreateMultipartUploadCommand').length, 1);
    assert.equal(names.filter((n) => n === 'UploadPartCommand').length, 3, '5 + 5 + 2 MiB');
    assert.equal(names.filter((n) => n === 'CompleteMultipartUploadCommand').length, 1);
    const back = await storage.get('tbl/dt=2026-01-01/f.parquet');
    assert.equal(back!.length, data.length);
    assert.equal(createHash('sha256').update(back!).digest('hex'), createHash('sha256').update(data).digest('hex'));
    assert.deepEqual(
      (await storage.list('tbl/dt=2026-01-01')).map((o) => [o.key, o.size]),
      [['tbl/dt=2026-01-01/f.parquet', 12 * MiB]],
    );

    // A small file goes up in one PutObject.
    writeFileSync(`${dir}/small`, 'small payload');
    await storage.putFile('tbl/small', `${dir}/small`);
    assert.equal((await storage.get('tbl/small'))!.toString(), 'small payload');
    assert.equal(existsSync(`${dir}/small`), false);
    writeFileSync(`${dir}/empty`, '');
    await storage.putFile('tbl/empty', `${dir}/empty`);
    assert.equal((await storage.get('tbl/empty'))!.length, 0);
    await assert.rejects(storage.putFile('tbl/none', `${dir}/missing`), (err: unknown) => err instanceof StorageError && /missing/.test(err.message));
  });

  const pageSize = options.listPageSize ?? 1000;
  test(`${name}: list pages through more than a page (${pageSize}) of keys, complete and sorted`, async () => {
    const { storage, client } = await make();
    const n = pageSize + 100;
    const keys = Array.from({ length: n }, (_, i) => `many/k${String((i * 7919) % n).padStart(4, '0')}.bin`);
    const deeper = ['many/k0050.bin.d/inner', 'many/sub/deep'];
    await inPool([...keys, ...deeper], 16, (k) => storage.put(k, k));
    const commands = recordCommands(client);

    const expected = [...keys].sort();
    const flat = await storage.list('many');
    assert.equal(flat.length, n);
    assert.deepEqual(flat.map((o) => o.key), expected, 'every key once, in order, none from below');
    assert.ok(flat.every((o) => o.size === 'many/k0000.bin'.length && o.mtimeMs > 0));
    const pages = commands.filter((c) => c.command === 'ListObjectsV2Command');
    assert.ok(pages.length >= 2, `paginated (${pages.length} pages)`);
    assert.equal(pages[0]!.input.ContinuationToken, undefined);
    assert.equal(typeof pages[1]!.input.ContinuationToken, 'string');

    const deep = await storage.list('many', { recursive: true });
    assert.deepEqual(deep.map((o) => o.key), [...keys, ...deeper].sort());
    const all = await storage.list('', { recursive: true });
    assert.equal(all.length, n + 2);

    await storage.delete([...keys, 'many/never-there']);
    assert.deepEqual((await storage.list('many', { recursive: true })).map((o) => o.key), deeper);
  });

  test(`${name}: delete empties nested directories with DeleteObjects`, async () => {
    const { storage, client } = await make();
    const keys = Array.from({ length: 60 }, (_, i) => `t/p=${i % 5}/q=${i % 3}/f${i}.parquet`);
    await inPool(keys, 8, (k) => storage.put(k, 'x'));
    await storage.put('t/keep', 'k');
    const commands = recordCommands(client);
    await storage.delete(keys);
    assert.deepEqual((await storage.list('t', { recursive: true })).map((o) => o.key), ['t/keep']);
    const deletes = commands.map((c) => c.command).filter((c) => c.startsWith('Delete'));
    assert.equal(deletes[0], 'DeleteObjectsCommand');
    if (!options.deleteObjectsAnswers500) assert.deepEqual(deletes, ['DeleteObjectsCommand'], 'one DeleteObjects, no single-key fallback');
  });

  test(`${name}: round-trips keys with spaces, unicode, = and %`, async () => {
    const { storage, client, bucket } = await make();
    const keys = [
      'odd/with space.txt',
      'odd/ünïcødé ☕ 𝄞.bin',
      'odd/country=Côte d’Ivoire/part=a=b/f.parquet',
      'odd/100%/literal%2Fslash%20.txt',
      'odd/plus+sign & amp.txt',
    ];
    for (const k of keys) await storage.put(k, `body of ${k}`);
    for (const k of keys) assert.equal((await storage.get(k))!.toString(), `body of ${k}`, k);
    assert.deepEqual((await storage.list('odd', { recursive: true })).map((o) => o.key), [...keys].sort());
    assert.deepEqual((await storage.list('odd/100%')).map((o) => o.key), ['odd/100%/literal%2Fslash%20.txt']);
    const raw = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'lake/v1/odd/100%/' }));
    assert.deepEqual((raw.Contents ?? []).map((o) => o.Key), ['lake/v1/odd/100%/literal%2Fslash%20.txt'], 'stored under the literal key');
    await storage.delete(keys);
    assert.deepEqual(await storage.list('odd', { recursive: true }), []);
  });
}
