import { spawnSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { S3Storage } from '../../src/storage/s3-storage.ts';

/** The parts of s3rver 3.7.1's API used here (the package ships no types). */
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverConstructor = new (options: {
  address: string;
  port: number;
  directory: string;
  silent: boolean;
  resetOnClose?: boolean;
}) => S3rverInstance;

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;

// The SDK warns once per process that its 2027 releases will need Node 22; tests run on Node 20 on purpose.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/**
 * An SDK client for a local S3-API server (s3rver, or a test double) at `endpoint`.
 * - forcePathStyle: the server has no DNS for bucket subdomains.
 * - checksums only WHEN_REQUIRED: with the SDK's default (WHEN_SUPPORTED), streamed PutObject
 *   bodies are sent with aws-chunked framing, which s3rver stores verbatim (silent corruption).
 * - CopyObject: s3rver decodes x-amz-copy-source with decodeURI, so `%2B` (+) and `%3D` (=) stay
 *   escaped and the source is not found; S3Storage.copy then retries with them raw (real S3 needs
 *   them escaped).
 * - NodeHttpHandler, region us-east-1 and s3rver's fixed dummy credentials (it checks signatures).
 */
export function localS3Client(endpoint: string, options: { maxAttempts?: number } = {}): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: 60_000 }),
    maxAttempts: options.maxAttempts ?? 5,
  });
}

/**
 * The environment of a CLI child using the s3rver at `endpoint` (its dummy credentials; add the
 * endpoints of other stand-ins beside it), with its file cache at `cache`.
 */
export function s3rverEnv(endpoint: string, cache: string): NodeJS.ProcessEnv {
  return {
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    // s3rver stores streamed bodies with their aws-chunked framing unless checksums are off.
    AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
    AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
    TRIBUTARY_CACHE: cache,
  };
}

export interface S3rverBucket {
  /** e.g. http://127.0.0.1:40123 */
  endpoint: string;
  /** A bucket created for this call, empty. */
  bucket: string;
  /** A client for `endpoint` (destroyed in after()). */
  client: S3Client;
}

let bucketSeq = 0;

/**
 * Starts s3rver in this process on 127.0.0.1 (a free port) with its own temporary directory, creates
 * a fresh bucket through the SDK, and stops everything in after() (the surrounding test, or the file).
 */
export async function s3rverBucket(): Promise<S3rverBucket> {
  let client: S3Client | undefined;
  let server: Awaited<ReturnType<typeof startS3rver>> | undefined;
  after(async () => {
    client?.destroy();
    await server?.close();
  });
  server = await startS3rver();
  const { endpoint } = server;
  client = localS3Client(endpoint);
  const bucket = `test-${process.pid}-${++bucketSeq}-${randomBytes(3).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return { endpoint, bucket, client };
}

/**
 * One s3rver, a bucket named `label` and a scratch directory, for a whole test file (start it in the
 * file's before(), close it in its after(): s3rverBucket's own after() would stop its server as soon
 * as a before() hook calling it ends). close() removes the directory unless KEEP_TMP=1.
 */
export async function startS3rverLake(label: string): Promise<{ storage: S3Storage; dir: string; close(): Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `tributary-${label}-`));
  const server = await startS3rver();
  const client = localS3Client(server.endpoint);
  await client.send(new CreateBucketCommand({ Bucket: label }));
  return {
    storage: new S3Storage({ bucket: label, client, prefix: 'lake' }),
    dir,
    close: async () => {
      client.destroy();
      await server.close();
      if (process.env.KEEP_TMP !== '1') rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts s3rver in this process on 127.0.0.1 (a free port) with its own temporary directory (under
 * `parentDir`, default the OS temp dir); close() stops it and removes the directory (kept with KEEP_TMP=1).
 * No node:test hooks: the benchmarks use it too.
 */
export async function startS3rver(parentDir = os.tmpdir()): Promise<{ endpoint: string; dir: string; close(): Promise<void> }> {
  const dir = mkdtempSync(path.join(parentDir, 'tributary-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory: dir, silent: true });
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    dir,
    close: async () => {
      await server.close().catch(() => undefined);
      if (!process.env.KEEP_TMP) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens with single DES, which OpenSSL 3 keeps in
 * its legacy provider: without it every truncated listing page is a 500. The provider can only be
 * enabled when Node starts, so when it is missing this re-runs the current test file in a child Node
 * with `--openssl-legacy-provider` (same arguments, same environment, same stdout: under `node --test`
 * the child's report reaches the runner unchanged) and exits with the child's status.
 * Call it at the top of a test file, before any test is declared.
 */
export function rerunWithOpenSslLegacyProviderIfNeeded(): void {
  if (desAvailable()) return;
  if (process.env.TRIBUTARY_TEST_LEGACY_OPENSSL) {
    // Already re-run and still no DES (an OpenSSL without the legacy provider): let the tests say so.
    return;
  }
  const child = spawnSync(process.execPath, ['--openssl-legacy-provider', ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, TRIBUTARY_TEST_LEGACY_OPENSSL: '1' },
  });
  if (child.error) throw child.error;
  process.exit(child.status ?? 1);
}

function desAvailable(): boolean {
  try {
    createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
    return true;
  } catch {
    return false;
  }
}
