import { KinesisClient } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { ConfigError, SourceError } from '../errors.ts';
import { describeSdkError, isRetriableSdkError, type SdkErrorShape } from './sdk-errors.ts';

/** Settings of a Kinesis client; unset ones come from the standard AWS sources. */
export interface KinesisClientOptions {
  /** Region; default AWS_REGION / the profile's region. */
  region?: string;
  /** Endpoint URL, e.g. a local kinesalite; default AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL / the region's. */
  endpoint?: string;
}

/**
 * A Kinesis client on HTTP/1.1 (NodeHttpHandler): Kinesis answers both, and local stand-ins such
 * as kinesalite fail on the SDK's HTTP/2 handler with "Protocol error".
 */
export function kinesisClient(o: KinesisClientOptions = {}, env: NodeJS.ProcessEnv = process.env): KinesisClient {
  const endpoint = o.endpoint ?? (env.AWS_ENDPOINT_URL_KINESIS || env.AWS_ENDPOINT_URL || undefined);
  if (endpoint !== undefined && !/^https?:\/\/[^/]+/.test(endpoint)) throw new ConfigError(`--endpoint ${JSON.stringify(endpoint)}: expected an http:// or https:// URL`);
  if (o.region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(o.region)) throw new ConfigError(`--region ${JSON.stringify(o.region)}: expected an AWS region such as eu-west-1`);
  return new KinesisClient({
    region: o.region,
    endpoint,
    maxAttempts: 3,
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: 30_000, throwOnRequestTimeout: true }),
  });
}

/** Kinesis error codes that mean "slow down", not "broken". */
export const KINESIS_THROTTLE_CODES: ReadonlySet<string> = new Set(['ProvisionedThroughputExceededException', 'LimitExceededException', 'ThrottlingException', 'KMSThrottlingException']);

/** True when a Kinesis call may succeed if tried again later. */
export function isRetriableKinesisError(err: unknown): boolean {
  return isRetriableSdkError(err, KINESIS_THROTTLE_CODES);
}

/**
 * Turns an error of the first call to a stream into one line for the user: a wrong stream name,
 * region, credentials or endpoint is a ConfigError (exit 2), anything else a SourceError.
 */
export function describeKinesisSetupError(err: unknown, stream: string, endpoint: string | undefined): Error {
  const { name, status } = describeSdkError(err);
  const e = (err ?? {}) as SdkErrorShape & { message?: string };
  const msg = e.message ?? String(err);
  const where = endpoint ?? 'the region endpoint';
  if (name === 'ResourceNotFoundException') return new ConfigError(`Kinesis stream ${JSON.stringify(stream)} does not exist (${msg})`, { cause: err });
  if (name === 'CredentialsProviderError' || /credential/i.test(msg)) return new ConfigError(`no AWS credentials for Kinesis: ${msg}`, { cause: err });
  if (name === 'UnrecognizedClientException' || name === 'InvalidSignatureException' || name === 'AccessDeniedException' || status === 403) {
    return new ConfigError(`Kinesis refused the credentials (${name}): ${msg}`, { cause: err });
  }
  if (/region/i.test(msg) && status === undefined) return new ConfigError(`Kinesis region problem: ${msg}`, { cause: err });
  if (typeof e.code === 'string' && ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'].includes(e.code)) {
    return new ConfigError(`cannot reach Kinesis at ${where}: ${e.code}`, { cause: err });
  }
  if (name === 'TimeoutError' || /timed? ?out/i.test(msg)) return new ConfigError(`cannot reach Kinesis at ${where}: ${msg}`, { cause: err });
  return new SourceError(`Kinesis ${name ?? 'error'} on stream ${stream}: ${msg}`, { cause: err, retriable: isRetriableKinesisError(err) });
}
