/**
 * The error family. Every error Tributary throws on purpose is a TributaryError, so callers can
 * branch on `retriable` (try again later) and on the subclass, and the CLI can map it to an exit code.
 */
export class TributaryError extends Error {
  /** True when the same call may succeed later (network, throttling, a lock held by another process). */
  readonly retriable: boolean;

  constructor(message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retriable = options.retriable ?? false;
  }
}

/** A bad option, argument or configuration value; the message names the value and the limit. CLI exit 2. */
export class ConfigError extends TributaryError {}

/** Input that cannot be read at all (a missing file, a corrupt gzip stream). Bad records are dead letters, not this. */
export class InputError extends TributaryError {}

/** Storage failed (I/O error, permission, an object that should exist but does not). */
export class StorageError extends TributaryError {}

/** The catalog failed or refused a change (a concurrent modification when `retriable`). */
export class CatalogError extends TributaryError {}

/** A query failed: unknown table, SQL error. */
export class QueryError extends TributaryError {}

/** Writing a Parquet file failed. */
export class WriterError extends TributaryError {}

/** A stream source failed (Kinesis unreachable, throttled beyond its retries). */
export class SourceError extends TributaryError {}

/**
 * This process no longer holds the lease of a shard it was reading (it stalled past the lease
 * timeout and another consumer may have taken the shard): nothing read from the shard may be
 * committed. Retriable: restart from the checkpoints.
 */
export class LeaseLostError extends SourceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { retriable: true, ...options });
  }
}

/** Throws a ConfigError naming the option, the bad value and what was expected. */
export function badOption(option: string, value: unknown, expected: string): never {
  throw new ConfigError(`${option}: ${JSON.stringify(value)} is not valid; expected ${expected}`);
}
