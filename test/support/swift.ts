import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'swift.sh');
/** What the skip says when Swift is not installed. */
const INSTALL_HINT = 'install: apt-get install --no-install-recommends swift-proxy swift-object swift-container swift-account memcached';

// The SDK warns once per process that its 2027 releases will need Node 22; tests run on Node 20 on purpose.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface SwiftS3 {
  /** The s3api endpoint, e.g. http://127.0.0.1:40123 (path-style). */
  endpoint: string;
  /** tempauth's `account:user`, which s3api takes as the access key id. */
  accessKeyId: string;
  secretAccessKey: string;
  /** The region SigV4 requests must be signed for (s3api's `location`). */
  region: string;
  /** A bucket created for this call, empty. */
  bucket: string;
  /** A client for `endpoint` with the SDK's default checksum behaviour, as S3Storage's own client has. */
  client: S3Client;
  /** Creates another empty bucket. */
  newBucket(): Promise<string>;
  /** Stops the servers and removes their directory (also done in after() and at process exit). */
  stop(): Promise<void>;
}

/** Why the last startSwift() returned null (for a visible skip), or undefined. */
export let swiftSkipReason: string | undefined;

let bucketSeq = 0;

/** An SDK client for a Swift s3api endpoint: path-style, SDK-default checksums, short connect timeout. */
export function swiftS3Client(endpoint: string, credentials: { accessKeyId: string; secretAccessKey: string }, region: string): S3Client {
  return new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials,
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: 60_000 }),
    maxAttempts: 5,
  });
}

/**
 * Starts a private single-node Swift with s3api on 127.0.0.1 (test/support/swift.sh, in a fresh
 * temporary directory), creates a bucket, and stops it in after() — and, should this process die
 * first, the script's watchdog does. Null when Swift is not installed (`swiftSkipReason` says why),
 * unless TRIBUTARY_REQUIRE_SWIFT=1, where that is an error. Any other failure to start is an error.
 */
export async function startSwift(): Promise<SwiftS3 | null> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tributary-swift-'));
  const started = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile('bash', [SCRIPT, 'start', dir, '--parent-pid', String(process.pid)], { timeout: 180_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
  if (started.code === 3) {
    rmSync(dir, { recursive: true, force: true });
    const reason = started.stderr.trim() || `OpenStack Swift is not installed (${INSTALL_HINT})`;
    if (process.env.TRIBUTARY_REQUIRE_SWIFT === '1') throw new Error(`TRIBUTARY_REQUIRE_SWIFT=1 but ${reason}`);
    swiftSkipReason = `${reason}; TRIBUTARY_REQUIRE_SWIFT=1 makes this a failure`;
    return null;
  }
  if (started.code !== 0) {
    spawnSync('bash', [SCRIPT, 'stop', dir]);
    throw new Error(`test/support/swift.sh start failed (exit ${started.code}): ${started.stderr.trim()}`);
  }
  const settings = Object.fromEntries(
    started.stdout
      .split('\n')
      .map((line) => /^([A-Z0-9_]+)=(.*)$/.exec(line))
      .filter((m) => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
  const endpoint = settings.SWIFT_S3_ENDPOINT;
  const accessKeyId = settings.SWIFT_S3_ACCESS_KEY_ID;
  const secretAccessKey = settings.SWIFT_S3_SECRET_ACCESS_KEY;
  const region = settings.SWIFT_S3_REGION;
  if (!endpoint || !accessKeyId || !secretAccessKey || !region) throw new Error(`test/support/swift.sh start printed no settings: ${started.stdout}`);

  let stopped = false;
  const stopNow = (): void => {
    if (stopped) return;
    stopped = true;
    spawnSync('bash', [SCRIPT, 'stop', dir]);
  };
  process.on('exit', stopNow);
  const client = swiftS3Client(endpoint, { accessKeyId, secretAccessKey }, region);
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('exit', stopNow);
    client.destroy();
    await new Promise<void>((resolve) => execFile('bash', [SCRIPT, 'stop', dir], () => resolve()));
  };
  after(stop);

  const newBucket = async (): Promise<string> => {
    const bucket = `tributary-${process.pid}-${++bucketSeq}-${randomBytes(3).toString('hex')}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    return bucket;
  };
  return { endpoint, accessKeyId, secretAccessKey, region, bucket: await newBucket(), client, newBucket, stop };
}
