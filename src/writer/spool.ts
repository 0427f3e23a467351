import { promises as fsp, openSync, writevSync, closeSync } from 'node:fs';
import type { TableDef } from '../catalog/catalog.ts';
import type { EventType } from '../events/schema.ts';

/** One spool of rows not committed yet, as a live query reads it. */
export interface LiveSpool {
  table: string;
  type: EventType;
  def: TableDef;
  path: string;
  rows: number;
}

/** The rows a writer holds that are not in committed files yet. */
export interface LiveSnapshot {
  spools: LiveSpool[];
  /** Every table the writer can write (queries see them, empty, before their first row). */
  tables: TableDef[];
}

/** Something that can hand out consistent snapshots (the Ingestor). */
export interface SnapshotSource {
  /** Runs `fn` with the live rows while nothing is committed or appended. */
  snapshot<T>(fn: (live: LiveSnapshot) => Promise<T>): Promise<T>;
}

/** The inclusive range of positions of one shard held by a file. */
export interface PositionRange {
  first: bigint;
  last: bigint;
}

/** Bytes buffered in memory before they are written to the spool file. */
const WRITE_CHUNK_BYTES = 256 * 1024;

/**
 * The rows of one (table, partition) not yet in a Parquet file, spooled to a local NDJSON file so
 * memory stays bounded whatever the target file size. Spool lines are made by ingest/encoder.ts:
 * `{"m":messageId,"r":receivedAtMs,"t":…,"o":…,"s":…,"e":<the raw event JSON>}`, the raw event
 * copied, not re-serialized; DuckDB extracts the columns when the file is written.
 */
export class SpoolBuffer {
  readonly table: string;
  /** Ordered partition key/value pairs. */
  readonly partition: ReadonlyArray<readonly [string, string]>;
  readonly path: string;
  /** Bytes spooled (drives size-based rotation, deterministic in the input). */
  bytes = 0;
  rows = 0;
  /** Wall-clock time of the first row, for the time cap. */
  readonly openedAtMs: number;
  /** Per shard, the positions this buffer holds. */
  readonly ranges = new Map<string, PositionRange>();
  private fd: number;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  /** The partition's committed high-water marks per shard (shared with later buffers of the partition). */
  readonly committedMarks: Map<string, bigint>;

  constructor(table: string, partition: ReadonlyArray<readonly [string, string]>, path: string, nowMs: number, committedMarks: Map<string, bigint>) {
    this.table = table;
    this.committedMarks = committedMarks;
    this.partition = partition;
    this.path = path;
    this.openedAtMs = nowMs;
    this.fd = openSync(path, 'w');
  }

  /**
   * Appends encoded spool lines (see ingest/encoder.ts) holding `rows` events of `shard`, whose
   * positions run from `first` to `last`. Positions of a shard must arrive in increasing order.
   */
  appendEncoded(bytes: Uint8Array, rows: number, shard: string, first: bigint, last: bigint): void {
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    this.bytes += bytes.length;
    this.rows += rows;
    const r = this.ranges.get(shard);
    if (r === undefined) this.ranges.set(shard, { first, last });
    else r.last = last;
    if (this.pendingBytes >= WRITE_CHUNK_BYTES) this.drain();
  }

  /** Writes what is buffered to the spool file (so a live query can read every row appended so far). */
  flushToDisk(): void {
    if (this.fd >= 0) this.drain();
  }

  private drain(): void {
    if (this.pending.length === 0) return;
    // Gathered write of the pieces as they are (no concatenating copy); a short write resumes where it stopped.
    let parts = this.pending;
    while (parts.length > 0) {
      let n = writevSync(this.fd, parts.length > 1024 ? parts.slice(0, 1024) : parts);
      let i = 0;
      while (i < parts.length && n >= parts[i]!.length) n -= parts[i++]!.length;
      parts = parts.slice(i);
      if (n > 0) parts[0] = parts[0]!.subarray(n);
    }
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Writes what is buffered and closes the spool file; the buffer takes no more rows. */
  close(): void {
    this.drain();
    closeSync(this.fd);
    this.fd = -1;
  }

  /** Removes the spool file. */
  async discard(): Promise<void> {
    if (this.fd >= 0) this.close();
    await fsp.rm(this.path, { force: true });
  }
}
