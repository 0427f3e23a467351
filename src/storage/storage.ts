import { writeFile } from 'node:fs/promises';
import { StorageError, badOption } from '../errors.ts';

/** One object in storage, as listed. */
export interface ObjectInfo {
  /** Key relative to the storage root, with '/' separators. */
  key: string;
  /** Size in bytes. */
  size: number;
  /** Last modification time, epoch milliseconds. */
  mtimeMs: number;
  /**
   * An opaque version tag that changes whenever the object's content does: the S3 ETag, or
   * size+mtime for a local file. Caches key their copies by it. Absent when the storage has none.
   */
  etag?: string;
}

/**
 * The Storage port: a flat key space under one root (a local directory or an S3 bucket/prefix).
 * Every write is atomic: a reader sees an object whole or not at all.
 */
export interface Storage {
  /** Human-readable root, e.g. `/data/lake` or `s3://bucket/prefix`. */
  readonly root: string;
  /** Writes `body` at `key`, replacing any object there, atomically. */
  put(key: string, body: Uint8Array | string): Promise<void>;
  /** Moves (or uploads) the local file at `localPath` to `key`, atomically; the local file is consumed. */
  putFile(key: string, localPath: string): Promise<void>;
  /** Creates `key` only if absent; false when it already existed (the basis of leases and catalog versions). */
  putIfAbsent(key: string, body: Uint8Array | string): Promise<boolean>;
  /** The object's bytes, or undefined when there is none. */
  get(key: string): Promise<Buffer | undefined>;
  /**
   * Bytes `offset` to `offset + length - 1` of the object (fewer where it ends first, none past its
   * end), or undefined when there is none: a Parquet footer without fetching the file (S3 Range).
   */
  getRange(key: string, offset: number, length: number): Promise<Buffer | undefined>;
  /** Objects directly under `prefix` (non-recursive unless `recursive`), sorted by key. */
  list(prefix: string, options?: { recursive?: boolean }): Promise<ObjectInfo[]>;
  /** Deletes the keys; missing keys are not an error. */
  delete(keys: string[]): Promise<void>;
  /** Copies an object inside the storage (a hard link locally, a server-side copy on S3); optional: callers fall back to get + put. */
  copy?(fromKey: string, toKey: string): Promise<void>;
  /**
   * Streams the object into the local file `localPath` (created or replaced), without holding it in
   * memory; its size and version tag, or undefined when there is no object. Optional: callers fall
   * back to get().
   */
  download?(key: string, localPath: string): Promise<{ size: number; etag?: string } | undefined>;
  /** A path DuckDB can read the object from directly, or undefined when it must be fetched first. */
  localPath(key: string): string | undefined;
}

/**
 * Copies the object at `key` into the local file `localPath`: streamed where the storage can
 * (download), else read whole and written. Its size and version tag, or undefined when there is none.
 */
export async function downloadObject(storage: Storage, key: string, localPath: string): Promise<{ size: number; etag?: string } | undefined> {
  if (storage.download !== undefined) return storage.download(key, localPath);
  const body = await storage.get(key);
  if (body === undefined) return undefined;
  await writeFile(localPath, body);
  return { size: body.length };
}

/**
 * Copies `from` to `to` inside the storage (server-side or a hard link where it can, else read and
 * written); an object that is not there is an error, never an empty copy.
 */
export async function copyObject(storage: Storage, from: string, to: string): Promise<void> {
  if (storage.copy !== undefined) return storage.copy(from, to);
  const body = await storage.get(from);
  if (body === undefined) throw new StorageError(`${storage.root}/${from} disappeared before it could be copied to ${to}`);
  await storage.put(to, body);
}

/** True for names readers must ignore (Hive, Athena and Spark skip names starting with '_' or '.'). */
export function isHiddenName(name: string): boolean {
  return name.startsWith('_') || name.startsWith('.');
}

/** Checks getRange's arguments: whole numbers, offset ≥ 0, length ≥ 1. */
export function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) badOption('getRange offset', offset, 'a whole number ≥ 0');
  if (!Number.isSafeInteger(length) || length < 1) badOption('getRange length', length, 'a whole number ≥ 1');
}
