/** What AWS SDK v3 errors carry that retry decisions need. */
export interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
  $response?: { statusCode?: number };
}

/** Node and undici network error codes: the request may not have reached the service. */
export const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** The error's name (the service's error code) and HTTP status, when it has them. */
export function describeSdkError(err: unknown): { name: string | undefined; status: number | undefined } {
  const e = (err ?? {}) as SdkErrorShape;
  return { name: e.name, status: e.$metadata?.httpStatusCode ?? e.$response?.statusCode };
}

/**
 * True for 5xx but 501 (Not Implemented never becomes implemented by waiting), 429, errors the SDK
 * marks retryable, the service's `retriableCodes`, and network failures.
 */
export function isRetriableSdkError(err: unknown, retriableCodes: ReadonlySet<string>): boolean {
  const e = (err ?? {}) as SdkErrorShape;
  const { name, status } = describeSdkError(err);
  if (status !== undefined && ((status >= 500 && status !== 501) || status === 429)) return true;
  if (e.$retryable) return true;
  if (name !== undefined && retriableCodes.has(name)) return true;
  return typeof e.code === 'string' && NETWORK_CODES.has(e.code);
}
