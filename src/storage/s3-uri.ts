import { badOption } from '../errors.ts';

// S3 names and limits, apart from the S3 storage itself: they are needed to parse a lake's location,
// and the storage module loads the AWS SDK (~0.2 s), which a local lake never needs.

/** S3's smallest part (all but the last part of a multipart upload). */
export const S3_MIN_PART_SIZE = 5 * 1024 * 1024;

/**
 * Parses `s3://bucket/prefix` (the prefix is optional; surrounding slashes are dropped).
 * Throws ConfigError naming the value when it is not an S3 URI or the bucket name is invalid.
 */
export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const m = typeof uri === 'string' ? /^s3:\/\/([^/]*)(?:\/(.*))?$/.exec(uri) : null;
  if (!m) badOption('S3 URI', uri, 's3://bucket or s3://bucket/prefix');
  const bucket = m[1]!;
  validateBucket(bucket);
  return { bucket, prefix: normalizePrefix(m[2] ?? '') };
}

/** A prefix without surrounding slashes; '.', '..' and empty segments are refused. */
export function normalizePrefix(prefix: string): string {
  if (typeof prefix !== 'string') badOption('S3 prefix', prefix, 'a string such as lake/prod');
  const p = prefix.replace(/^\/+|\/+$/g, '');
  if (p === '') return '';
  if (p.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    badOption('S3 prefix', prefix, "a key prefix without '.', '..' or empty segments");
  }
  return p;
}

/** S3's naming rules for general purpose buckets (and directory buckets, `name--zone--x-s3`). */
export function validateBucket(bucket: unknown): asserts bucket is string {
  const rules = '3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit';
  if (typeof bucket !== 'string' || bucket.length < 3 || bucket.length > 63 || !/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(bucket)) {
    badOption('S3 bucket name', bucket, rules);
  }
  if (bucket.includes('..') || bucket.includes('.-') || bucket.includes('-.')) {
    badOption('S3 bucket name', bucket, `${rules}, with no '..', '.-' or '-.'`);
  }
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(bucket)) badOption('S3 bucket name', bucket, 'a name that is not an IP address');
  if (/^(xn--|sthree-|amzn-s3-demo-)/.test(bucket) || /(-s3alias|--ol-s3|\.mrap)$/.test(bucket)) {
    badOption('S3 bucket name', bucket, "a name without S3's reserved prefixes (xn--, sthree-, amzn-s3-demo-) and suffixes (-s3alias, --ol-s3, .mrap)");
  }
}

/**
 * Where S3 requests go, as every command reads it from the environment: AWS_ENDPOINT_URL_S3, else
 * AWS_ENDPOINT_URL; path-style addressing with a custom endpoint (local S3-API servers need it) or
 * when TRIBUTARY_S3_PATH_STYLE=1.
 */
export function s3EndpointFromEnv(env: NodeJS.ProcessEnv): { endpoint: string | undefined; forcePathStyle: true | undefined } {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  return { endpoint, forcePathStyle: endpoint !== undefined || env.TRIBUTARY_S3_PATH_STYLE === '1' ? true : undefined };
}
