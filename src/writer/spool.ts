import { promises as fsp, openSync, writevSync, closeSync } from 'node:fs';
import type { TableDef } from '../catalog/catalog.ts';
import type { EventType } from '../events/schema.ts';
import { INDEX_ENTRY_BYTES } from './spool-sort.ts';

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

/** Encoded spool lines and their sort keys, as ingest/encoder.ts makes them. */
export interface SpoolRows {
  /** UTF-8 spool lines. */
  bytes: Uint8Array;
  /** Per row: start offset in `bytes`; one extra entry holds the total length. */
  offsets: Uint32Array;
  /** Per row: receivedAt in ms. */
  receivedAt: Float64Array;
  /** Distinct track event names (empty for other types). */
  events: string[];
  /** Per row: index into `events`. */
  eventOf: Uint32Array;
}

/**
 * The rows of one (table, partition) not yet in a Parquet file, spooled to a local NDJSON file so
 * memory stays bounded whatever the target file size. Spool lines are made by ingest/encoder.ts:
 * `{"m":messageId,"r":receivedAtMs,"t":…,"o":…,"s":…,"e":<the raw event JSON>}`, the raw event
 * copied, not re-serialized; DuckDB extracts the columns when the file is written. The lines stay
 * in arrival order (appends stay cheap; live queries read the spool as it grows); their sort keys go
 * to an index file beside it (`indexPath`, see spool-sort.ts), from which the write sorts a copy.
 */
export class SpoolBuffer {
  readonly table: string;
  /** Ordered partition key/value pairs. */
  readonly partition: ReadonlyArray<readonly [string, string]>;
  readonly path: string;
  /** The sort-key index beside the spool. */
  readonly indexPath: string;
  /** Event names by the ids the index holds. */
  readonly events: string[] = [];
  private readonly eventIds = new Map<string, number>();
  /** Bytes spooled (drives size-based rotation, deterministic in the input). */
  bytes = 0;
  rows = 0;
  private ordered = true;
  private lastReceivedAt = -Infinity;
  /** Wall-clock time of the first row, for the time cap. */
  readonly openedAtMs: number;
  /** Per shard, the positions this buffer holds. */
  readonly ranges = new Map<string, PositionRange>();
  private fd: number;
  private indexFd: number;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private pendingIndex: Uint8Array[] = [];

  /** The partition's committed high-water marks per shard (shared with later buffers of the partition). */
  readonly committedMarks: Map<string, bigint>;

  constructor(table: string, partition: ReadonlyArray<readonly [string, string]>, path: string, nowMs: number, committedMarks: Map<string, bigint>) {
    this.table = table;
    this.committedMarks = committedMarks;
    this.partition = partition;
    this.path = path;
    this.openedAtMs = nowMs;
    this.indexPath = path + '.idx';
    this.fd = openSync(path, 'w');
    this.indexFd = openSync(this.indexPath, 'w');
  }

  /**
   * Appends rows `from` to the end of `src` (see ingest/encoder.ts), events of `shard` whose
   * positions run from `first` to `last`. Positions of a shard must arrive in increasing order.
   */
  append(src: SpoolRows, from: number, shard: string, first: bigint, last: bigint): void {
    const rows = src.offsets.length - 1 - from;
    const bytes = src.bytes.subarray(src.offsets[from]!, src.offsets[rows + from]!);
    const ids = src.events.map((e) => {
      let id = this.eventIds.get(e);
      if (id === undefined) {
        this.eventIds.set(e, (id = this.events.length));
        this.events.push(e);
      }
      return id;
    });
    const index = new ArrayBuffer(rows * INDEX_ENTRY_BYTES);
    const f64 = new Float64Array(index);
    const u32 = new Uint32Array(index);
    if (ids.length > 0) this.ordered = false;
    for (let k = 0; k < rows; k++) {
      const i = from + k;
      const r = src.receivedAt[i]!;
      if (r < this.lastReceivedAt) this.ordered = false;
      this.lastReceivedAt = r;
      f64[2 * k] = r;
      u32[4 * k + 2] = ids.length === 0 ? 0 : ids[src.eventOf[i]!]!;
      u32[4 * k + 3] = src.offsets[i + 1]! - src.offsets[i]!;
    }
    this.pendingIndex.push(new Uint8Array(index));
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    this.bytes += bytes.length;
    this.rows += rows;
    const r = this.ranges.get(shard);
    if (r === undefined) this.ranges.set(shard, { first, last });
    else r.last = last;
    if (this.pendingBytes >= WRITE_CHUNK_BYTES) this.drain();
  }

  /**
   * True while the lines, in arrival order, are already in the file's order: no event names (tables
   * other than tracks) and receivedAt never decreasing, as when input arrives in time order. Such a
   * spool is written as it is, without a sorted copy.
   */
  get inOrder(): boolean {
    return this.ordered;
  }

  /** Writes what is buffered to the spool file (so a live query can read every row appended so far). */
  flushToDisk(): void {
    if (this.fd >= 0) this.drain();
  }

  private drain(): void {
    if (this.pending.length === 0) return;
    writeAll(this.fd, this.pending);
    writeAll(this.indexFd, this.pendingIndex);
    this.pending = [];
    this.pendingIndex = [];
    this.pendingBytes = 0;
  }

  /** Writes what is buffered and closes the spool and index files; the buffer takes no more rows. */
  close(): void {
    this.drain();
    closeSync(this.fd);
    closeSync(this.indexFd);
    this.fd = -1;
  }

  /** Removes the spool and index files. */
  async discard(): Promise<void> {
    if (this.fd >= 0) this.close();
    await fsp.rm(this.path, { force: true });
    await fsp.rm(this.indexPath, { force: true });
  }
}

/** Gathered write of the pieces as they are (no concatenating copy); a short write resumes where it stopped. */
function writeAll(fd: number, pieces: Uint8Array[]): void {
  let parts = pieces;
  while (parts.length > 0) {
    let n = writevSync(fd, parts.length > 1024 ? parts.slice(0, 1024) : parts);
    let i = 0;
    while (i < parts.length && n >= parts[i]!.length) n -= parts[i++]!.length;
    parts = parts.slice(i);
    if (n > 0) parts[0] = parts[0]!.subarray(n);
  }
}
