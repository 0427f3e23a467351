import { promises as fsp, openSync, writeSync, closeSync } from 'node:fs';
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
/** Index entries buffered in memory before they are written to the index file. */
const INDEX_CHUNK_ENTRIES = 1024;

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
  // Appends are copied into buffers of the spool's own (allocated on the first append), not kept as
  // references to the encoder's output: that output is handed back to the decode workers for reuse,
  // and a new buffer per batch made V8 run a full GC every ~60 ms on external-memory pressure.
  private chunk: Buffer | null = null;
  private chunkUsed = 0;
  private index: Buffer | null = null;
  private indexF64: Float64Array | null = null;
  private indexU32: Uint32Array | null = null;
  private indexUsed = 0;

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
    const ids = src.events.map((e) => {
      let id = this.eventIds.get(e);
      if (id === undefined) {
        this.eventIds.set(e, (id = this.events.length));
        this.events.push(e);
      }
      return id;
    });
    if (ids.length > 0) this.ordered = false;
    if (this.index === null) {
      this.index = Buffer.allocUnsafeSlow(INDEX_CHUNK_ENTRIES * INDEX_ENTRY_BYTES);
      this.indexF64 = new Float64Array(this.index.buffer, 0, 2 * INDEX_CHUNK_ENTRIES);
      this.indexU32 = new Uint32Array(this.index.buffer, 0, 4 * INDEX_CHUNK_ENTRIES);
    }
    const f64 = this.indexF64!;
    const u32 = this.indexU32!;
    for (let k = 0; k < rows; k++) {
      const i = from + k;
      const r = src.receivedAt[i]!;
      if (r < this.lastReceivedAt) this.ordered = false;
      this.lastReceivedAt = r;
      if (this.indexUsed === INDEX_CHUNK_ENTRIES) this.drainIndex();
      const e = this.indexUsed++;
      f64[2 * e] = r;
      u32[4 * e + 2] = ids.length === 0 ? 0 : ids[src.eventOf[i]!]!;
      u32[4 * e + 3] = src.offsets[i + 1]! - src.offsets[i]!;
    }
    this.appendBytes(src.bytes, src.offsets[from]!, src.offsets[rows + from]!);
    this.bytes += src.offsets[rows + from]! - src.offsets[from]!;
    this.rows += rows;
    const r = this.ranges.get(shard);
    if (r === undefined) this.ranges.set(shard, { first, last });
    else r.last = last;
  }

  /** Copies `src[start, end)` into the write buffer, writing it out as it fills; long runs go straight to the file. */
  private appendBytes(src: Uint8Array, start: number, end: number): void {
    this.chunk ??= Buffer.allocUnsafeSlow(WRITE_CHUNK_BYTES);
    const chunk = this.chunk;
    while (start < end) {
      if (this.chunkUsed === 0 && end - start >= chunk.length) {
        writeFully(this.fd, src, start, end);
        return;
      }
      const n = Math.min(end - start, chunk.length - this.chunkUsed);
      chunk.set(src.subarray(start, start + n), this.chunkUsed);
      this.chunkUsed += n;
      start += n;
      if (this.chunkUsed === chunk.length) this.drainBytes();
    }
  }

  private drainBytes(): void {
    if (this.chunkUsed > 0) writeFully(this.fd, this.chunk!, 0, this.chunkUsed);
    this.chunkUsed = 0;
  }

  private drainIndex(): void {
    if (this.indexUsed > 0) writeFully(this.indexFd, this.index!, 0, this.indexUsed * INDEX_ENTRY_BYTES);
    this.indexUsed = 0;
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
    this.drainBytes();
    this.drainIndex();
  }

  /** Writes what is buffered and closes the spool and index files; the buffer takes no more rows. */
  close(): void {
    this.drain();
    closeSync(this.fd);
    closeSync(this.indexFd);
    this.fd = -1;
    this.chunk = this.index = this.indexF64 = this.indexU32 = null;
  }

  /** Removes the spool and index files. */
  async discard(): Promise<void> {
    if (this.fd >= 0) this.close();
    await fsp.rm(this.path, { force: true });
    await fsp.rm(this.indexPath, { force: true });
  }
}

/** Writes `src[start, end)` at the file's end; a short write resumes where it stopped. */
function writeFully(fd: number, src: Uint8Array, start: number, end: number): void {
  while (start < end) start += writeSync(fd, src, start, end - start);
}
