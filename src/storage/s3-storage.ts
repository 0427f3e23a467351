import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type GetObjectCommandOutput,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { badOption, StorageError } from '../errors.ts';
import { checkClientOptions } from '../aws/client-options.ts';
import { checkRange, type ObjectInfo, type Storage } from './storage.ts';
import { describeSdkError, isRetriableSdkError } from '../aws/sdk-errors.ts';
import { withContentMd5 } from './s3-content-md5.ts';
import { S3_MIN_PART_SIZE, normalizePrefix, parseS3Uri, validateBucket } from './s3-uri.ts';

export { S3_MIN_PART_SIZE, parseS3Uri };

const MiB = 1024 * 1024;
/** S3's largest part. */
const S3_MAX_PART_SIZE = 5 * 1024 * MiB;
/** S3 allows at most 10,000 parts per multipart upload. */
const S3_MAX_PARTS = 10_000;
const DEFAULT_PART_SIZE = 16 * MiB;
/** DeleteObjects takes at most 1,000 keys per request. */
const DELETE_BATCH = 1000;
/** Parallel single-key deletes when DeleteObjects itself fails with a server error. */
const DELETE_FALLBACK_CONCURRENCY = 8;
/** Attempts per request made by a client this class creates (the SDK retries 5xx, throttling and network errors). */
const DEFAULT_MAX_ATTEMPTS = 5;
/** Reads of a whole object (get) when its body is cut off: the SDK's retries end before the body is read. */
const BODY_READ_ATTEMPTS = 4;

export interface S3StorageOptions {
  /** Bucket name (S3's naming rules for general purpose buckets). */
  bucket: string;
  /** Key prefix every key lives under, without leading or trailing '/' (e.g. `lake/prod`). */
  prefix?: string;
  /** A configured client; when given, `region`, `endpoint` and `forcePathStyle` must not be. */
  client?: S3Client;
  /** AWS region; otherwise the SDK's usual resolution (AWS_REGION, profile). */
  region?: string;
  /** Endpoint URL of an S3-compatible service (MinIO, R2, a local test server). */
  endpoint?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible services need. */
  forcePathStyle?: boolean;
  /** Part size of multipart uploads in putFile; at least 5 MiB (S3's minimum). Default 16 MiB. */
  partSizeBytes?: number;
}

/**
 * Storage in an S3 bucket under an optional prefix (also S3-compatible services through `endpoint`).
 *
 * - Writes are atomic because S3 objects appear only when a PutObject or a multipart upload completes.
 * - putIfAbsent is a PutObject with `If-None-Match: *`, a conditional write that Amazon S3 supports
 *   since August 2024 (general purpose and directory buckets). A service that refuses the header
 *   (501 NotImplemented, as OpenStack Swift's s3api does) makes putIfAbsent fail with a StorageError
 *   saying so; one that silently ignores it would make putIfAbsent always succeed, so only use
 *   S3-compatible services that implement it.
 * - DeleteObjects carries Content-MD5 (S3's documented header for it) rather than the SDK's CRC32
 *   checksum, which services that predate flexible checksums reject.
 * - Keys are relative to the prefix; '.' and empty segments collapse and '..' pops a segment, as a
 *   file path would under LocalStorage, and a key that would leave the prefix is refused.
 * - Errors are StorageError naming the operation and the object; `retriable` is true for server
 *   errors (5xx), throttling (SlowDown) and network failures, after the SDK's own retries.
 */
export class S3Storage implements Storage {
  readonly root: string;
  readonly bucket: string;
  /** The key prefix without trailing '/', or '' for the whole bucket. */
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly partSize: number;

  constructor(options: S3StorageOptions) {
    if (options === null || typeof options !== 'object') badOption('S3 storage options', options, 'an object with a bucket');
    validateBucket(options.bucket);
    this.bucket = options.bucket;
    this.prefix = normalizePrefix(options.prefix ?? '');
    this.root = this.prefix ? `s3://${this.bucket}/${this.prefix}` : `s3://${this.bucket}`;

    const partSize = options.partSizeBytes ?? DEFAULT_PART_SIZE;
    if (!Number.isSafeInteger(partSize) || partSize < S3_MIN_PART_SIZE || partSize > S3_MAX_PART_SIZE) {
      badOption('S3 part size (partSizeBytes)', partSize, `a whole number of bytes from ${S3_MIN_PART_SIZE} (5 MiB) to ${S3_MAX_PART_SIZE} (5 GiB)`);
    }
    this.partSize = partSize;

    checkClientOptions('S3', 'S3 storage', options, ['region', 'endpoint', 'forcePathStyle']);
    if (options.client !== undefined) {
      this.client = options.client;
    } else {
      this.client = new S3Client({
        region: options.region,
        endpoint: options.endpoint,
        forcePathStyle: options.forcePathStyle,
        maxAttempts: DEFAULT_MAX_ATTEMPTS,
      });
    }
  }

  /** Object storage has no local path: DuckDB must be given fetched bytes (or its own S3 access). */
  localPath(_key: string): undefined {
    return undefined;
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const k = this.objectKey(key);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: k, Body: body }));
    } catch (err) {
      throw this.failure('put', k, err);
    }
  }

  /**
   * Uploads the local file (multipart above the part size, several parts in flight), then deletes it.
   * The object appears only when the upload completes; a failed multipart upload is aborted.
   */
  async putFile(key: string, localPath: string): Promise<void> {
    const k = this.objectKey(key);
    let size: number;
    try {
      size = (await fsp.stat(localPath)).size;
    } catch (err) {
      throw new StorageError(`cannot upload ${localPath} to ${this.uri(k)}: ${(err as Error).message}`, { cause: err });
    }
    // Large files get larger parts so they stay within S3's 10,000-part limit.
    const partSize = Math.max(this.partSize, Math.ceil(size / S3_MAX_PARTS));
    const stream = createReadStream(localPath);
    try {
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: k, Body: stream },
        partSize,
        queueSize: 4,
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (err) {
      throw this.failure(`upload ${localPath} to`, k, err);
    } finally {
      stream.destroy();
    }
    try {
      await fsp.rm(localPath, { force: true });
    } catch (err) {
      throw new StorageError(`uploaded ${this.uri(k)} but cannot remove ${localPath}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * PutObject with `If-None-Match: *`: S3 creates the object only when no object has that key
   * (conditional writes, supported by Amazon S3 since August 2024). 412 PreconditionFailed means
   * another writer created it: false. 409 ConditionalRequestConflict (a concurrent conditional write
   * to the same key in flight) is also false: never two winners; the caller retries as it would
   * after losing. A write whose success response was lost and which the SDK retried reads as false too.
   * A service without conditional writes (501 NotImplemented) is a non-retriable StorageError: nothing
   * here may pretend to be exclusive.
   */
  async putIfAbsent(key: string, body: Uint8Array | string): Promise<boolean> {
    const k = this.objectKey(key);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: k, Body: body, IfNoneMatch: '*' }));
      return true;
    } catch (err) {
      const { name, status } = describe(err);
      if (name === 'PreconditionFailed' || status === 412) return false;
      if (name === 'ConditionalRequestConflict' || status === 409) return false;
      if (name === 'NotImplemented' || status === 501) {
        throw new StorageError(
          `cannot create ${this.uri(k)} only if absent: the S3 service does not implement conditional writes ` +
            `(PutObject with If-None-Match: *), which leases and catalog commits need for exclusivity; ` +
            `it answered ${name ?? 'Error'} (HTTP ${status ?? '?'}): ${(err as Error)?.message ?? String(err)}`,
          { retriable: false, cause: err },
        );
      }
      throw this.failure('create', k, err);
    }
  }

  /**
   * A server-side CopyObject (no bytes through this process), atomic like every S3 write. S3 copies
   * objects of up to 5 GiB in one CopyObject; larger ones fail with S3's own error (InvalidRequest).
   * CopySource is `bucket/key` URL-encoded as S3 documents it ('+', '=' and '%' escaped too). Some
   * S3-compatible servers (s3rver) decode it like JavaScript's decodeURI, which leaves `%2B` and
   * `%3D` escaped, and answer NoSuchKey: then the copy is tried once more with those characters raw.
   */
  async copy(fromKey: string, toKey: string): Promise<void> {
    const from = this.objectKey(fromKey);
    const to = this.objectKey(toKey);
    const strict = `${this.bucket}/${from.split('/').map(encodeURIComponent).join('/')}`;
    const lenient = `${this.bucket}/${encodeURI(from)}`;
    for (const source of strict === lenient ? [strict] : [strict, lenient]) {
      try {
        await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource: source }));
        return;
      } catch (err) {
        const { name, status } = describe(err);
        if ((name === 'NoSuchKey' || status === 404) && source === strict && strict !== lenient) continue;
        throw this.failure(`copy ${this.uri(from)} to`, to, err);
      }
    }
  }

  /**
   * GetObject read whole. The SDK retries the request, but not the body, which is read after its retries are
   * over: a connection cut mid-body (or a body shorter than its Content-Length) is retried here, GetObject
   * included, up to BODY_READ_ATTEMPTS times.
   */
  async get(key: string): Promise<Buffer | undefined> {
    return this.readBody(this.objectKey(key));
  }

  /** GetObject with a Range header, its body read as get's (cut bodies retried); past the end: no bytes. */
  async getRange(key: string, offset: number, length: number): Promise<Buffer | undefined> {
    checkRange(offset, length);
    return this.readBody(this.objectKey(key), `bytes=${offset}-${offset + length - 1}`);
  }

  private async readBody(k: string, range?: string): Promise<Buffer | undefined> {
    for (let attempt = 1; ; attempt++) {
      const out = await this.sendGet(k, range);
      if (out === undefined) return undefined;
      if (out === 'past-end') return Buffer.alloc(0);
      try {
        if (!out.Body) return Buffer.alloc(0);
        const bytes = await out.Body.transformToByteArray();
        if (out.ContentLength !== undefined && bytes.byteLength !== out.ContentLength) {
          throw new Error(`got ${bytes.byteLength} of ${out.ContentLength} bytes`);
        }
        return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      } catch (err) {
        if (attempt >= BODY_READ_ATTEMPTS) {
          throw new StorageError(`cannot read ${this.uri(k)}: the body was cut off ${attempt} times (${(err as Error).message})`, { retriable: true, cause: err });
        }
        await new Promise((r) => setTimeout(r, Math.random() * 50 * 2 ** attempt));
      }
    }
  }

  /**
   * GetObject streamed to `localPath`; the body's length is checked against Content-Length, so a
   * connection dropped mid-body is a (retriable) error, never a short file.
   */
  async download(key: string, localPath: string): Promise<{ size: number; etag?: string } | undefined> {
    const k = this.objectKey(key);
    const out = await this.sendGet(k);
    if (out === undefined || out === 'past-end') return undefined; // no range asked: never past-end
    let size = 0;
    try {
      const body = (out.Body ?? Readable.from([])) as Readable;
      body.on('data', (chunk: Buffer) => (size += chunk.length));
      await pipeline(body, createWriteStream(localPath));
    } catch (err) {
      throw new StorageError(`cannot read ${this.uri(k)} into ${localPath}: ${(err as Error).message}`, { retriable: true, cause: err });
    }
    if (out.ContentLength !== undefined && size !== out.ContentLength) {
      throw new StorageError(`read ${this.uri(k)}: got ${size} of ${out.ContentLength} bytes (connection cut?)`, { retriable: true });
    }
    return { size, ...(out.ETag ? { etag: out.ETag } : {}) };
  }

  async list(prefix: string, options: { recursive?: boolean } = {}): Promise<ObjectInfo[]> {
    const rel = normalizeKey(prefix, this.root);
    const base = this.prefix ? `${this.prefix}/` : '';
    const listPrefix = rel ? `${base}${rel}/` : base;
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: listPrefix || undefined,
            Delimiter: options.recursive ? undefined : '/',
            ContinuationToken: token,
          }),
        );
      } catch (err) {
        throw this.failure('list', listPrefix, err);
      }
      for (const o of page.Contents ?? []) {
        const key = o.Key;
        // Keys ending in '/' are "folder" markers made by consoles, not objects LocalStorage could hold.
        if (key === undefined || !key.startsWith(base) || key.endsWith('/')) continue;
        out.push({ key: key.slice(base.length), size: o.Size ?? 0, mtimeMs: o.LastModified?.getTime() ?? 0, ...(o.ETag ? { etag: o.ETag } : {}) });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && !token) {
        throw new StorageError(`list ${this.uri(listPrefix)}: a truncated page without a continuation token`, { retriable: true });
      }
    } while (token);
    // The same order as LocalStorage (UTF-16 code units), whatever order the service returned.
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return out;
  }

  /**
   * DeleteObjects in batches of 1,000 with Content-MD5 (quiet: the response lists only failures, each a StorageError).
   * When a batch request itself fails with a server error after the SDK's retries, its outcome is
   * unknown, so the batch is deleted again key by key (DeleteObject is idempotent).
   */
  async delete(keys: string[]): Promise<void> {
    const all = [...new Set(keys.map((k) => this.objectKey(k)))];
    for (let i = 0; i < all.length; i += DELETE_BATCH) {
      const batch = all.slice(i, i + DELETE_BATCH);
      let errors;
      try {
        const out = await this.client.send(
          withContentMd5(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } })),
        );
        errors = out.Errors ?? [];
      } catch (err) {
        if ((describe(err).status ?? 0) >= 500) {
          await this.deleteEach(batch);
          continue;
        }
        throw this.failure('delete', batch.length === 1 ? batch[0]! : `${batch[0]} (and ${batch.length - 1} more)`, err);
      }
      if (errors.length > 0) {
        const shown = errors
          .slice(0, 5)
          .map((e) => `${this.uri(e.Key ?? '?')}: ${e.Code ?? 'error'} ${e.Message ?? ''}`.trim())
          .join('; ');
        const more = errors.length > 5 ? ` (and ${errors.length - 5} more)` : '';
        const retriable = errors.some((e) => RETRIABLE_CODES.has(e.Code ?? ''));
        throw new StorageError(`cannot delete ${errors.length} of ${batch.length} objects: ${shown}${more}`, { retriable });
      }
    }
  }

  private async deleteEach(keys: string[]): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < keys.length) {
        const k = keys[next++]!;
        try {
          await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: k }));
        } catch (err) {
          throw this.failure('delete', k, err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_FALLBACK_CONCURRENCY, keys.length) }, worker));
  }

  /**
   * GetObject of the full object key `k`, its body not yet read; undefined when there is no such
   * object (NoSuchKey, or a 404 that is not NoSuchBucket: a missing bucket is an error).
   */
  private async sendGet(k: string, range?: string): Promise<GetObjectCommandOutput | 'past-end' | undefined> {
    try {
      return await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: k, Range: range }));
    } catch (err) {
      const { name, status } = describe(err);
      if (name === 'NoSuchKey' || (status === 404 && name !== 'NoSuchBucket')) return undefined;
      if (range !== undefined && (name === 'InvalidRange' || status === 416)) return 'past-end';
      throw this.failure('read', k, err);
    }
  }

  /** The full object key of `key` under the prefix; refuses keys that leave it or name no object. */
  private objectKey(key: string): string {
    const rel = normalizeKey(key, this.root);
    if (rel === '') throw new StorageError(`key ${JSON.stringify(key)} names the root ${this.root}, not an object`);
    return this.prefix ? `${this.prefix}/${rel}` : rel;
  }

  private uri(fullKey: string): string {
    return `s3://${this.bucket}/${fullKey}`;
  }

  private failure(op: string, fullKey: string, err: unknown): StorageError {
    const { name, status } = describe(err);
    const detail = `${name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${(err as Error)?.message ?? String(err)}`;
    return new StorageError(`cannot ${op} ${this.uri(fullKey)}: ${detail}`, { retriable: isRetriable(err), cause: err });
  }
}

/** Error codes (S3's and the SDK's) that mean "try again later". */
const RETRIABLE_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'InternalError',
  'ServiceUnavailable',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);

const describe = describeSdkError;
const isRetriable = (err: unknown) => isRetriableSdkError(err, RETRIABLE_CODES);

/**
 * Resolves `key` against the root like a relative path: empty and '.' segments collapse, '..' pops.
 * Returns the normalized relative key ('' for the root itself); throws when it would leave the root.
 */
function normalizeKey(key: string, root: string): string {
  if (typeof key !== 'string') throw new StorageError(`key ${JSON.stringify(key)} is not a string`);
  if (key.startsWith('/')) throw new StorageError(`key ${JSON.stringify(key)} is absolute: outside the storage root ${root}`);
  const out: string[] = [];
  for (const seg of key.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) throw new StorageError(`key ${JSON.stringify(key)} resolves outside the storage root ${root}`);
      out.pop();
    } else {
      out.push(seg);
    }
  }
  return out.join('/');
}

