import { promises as fsp, openSync, writeSync, closeSync } from 'node:fs';
import type { TableDef } from '../catalog/catalog.ts';
import type { EventType } from '../events/schema.ts';
import { INDEX_ENTRY_BYTES, numberedPath } from './spool-sort.ts';

/** One spool of rows not committed yet, as a live query reads it. */
export interface LiveSpool {
  table: string;
  type: EventType;
  def: TableDef;
  /** The files holding the spool's rows: its segments, or once sorted the sorted copy (read together, in any order: a query does not rely on row order). */
  paths: string[];
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

/** Bytes buffered in memory before they are written to a segment file: the first segment's, and each further one's. */
const WRITE_CHUNK_BYTES = 256 * 1024;
const SEGMENT_CHUNK_BYTES = 64 * 1024;
/** Index entries buffered in memory before they are written to the index file. */
const INDEX_CHUNK_ENTRIES = 1024;
/**
 * Most segment files per spool. Each track event name gets a segment of its own, in order of first
 * appearance, up to this many; the names after that share the last one. Memory cost: 64 KiB of write
 * buffer and one open file per segment in use (2 MiB and 32 files per spool at most).
 */
export const MAX_SEGMENTS = 32;

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

/** One file of a spool, as the write reads it (see spool-sort.ts). */
export interface SpoolSegment {
  /** The NDJSON file. */
  path: string;
  /** Its size in bytes. */
  bytes: number;
  /** True when its lines are already in the file's order (one event name or none, receivedAt never decreasing): read as it is, not copied. */
  inOrder: boolean;
}

/** A segment while it is written. */
interface OpenSegment extends SpoolSegment {
  fd: number;
  chunk: Buffer | null;
  chunkBytes: number;
  used: number;
  lastReceivedAt: number;
}

/**
 * The rows of one (table, partition) not yet in a Parquet file, spooled to local NDJSON files so
 * memory stays bounded whatever the target file size. Spool lines are made by ingest/encoder.ts:
 * `{"m":messageId,"r":receivedAtMs,"t":…,"o":…,"s":…,"e":<the raw event JSON>}`, the raw event
 * copied, not re-serialized; DuckDB extracts the columns when the file is written.
 *
 * The lines go to segment files, one per track event name (up to MAX_SEGMENTS), each in arrival
 * order: appends stay cheap, and live queries read the segments as they grow. A file is ordered by
 * event then receivedAt, so when input arrives in time order (a stream: receivedAt is stamped on
 * arrival) every segment is already in its final order, and the write reads the segments one after
 * the other in event order without copying a byte (measured: the sorted copy of the tracks spools
 * was the largest single cost after the input ended). Sort keys go to one index file beside them
 * (`indexPath`, see spool-sort.ts), from which the write sorts a copy of the segments that need it.
 */
export class SpoolBuffer {
  readonly table: string;
  /** Ordered partition key/value pairs. */
  readonly partition: ReadonlyArray<readonly [string, string]>;
  /** The first segment's file; further segments are named after it. */
  readonly path: string;
  /** The sort-key index beside the spool. */
  readonly indexPath: string;
  /** Event names by the ids the index holds. */
  readonly events: string[] = [];
  /** Per event id, the index of its segment. */
  readonly segmentOf: number[] = [];
  private readonly eventIds = new Map<string, number>();
  private readonly segs: OpenSegment[] = [];
  /** Bytes spooled (drives size-based rotation, deterministic in the input). */
  bytes = 0;
  rows = 0;
  /** Wall-clock time of the first row, for the time cap. */
  readonly openedAtMs: number;
  /** Per shard, the positions this buffer holds. */
  readonly ranges = new Map<string, PositionRange>();
  private indexFd: number;
  private closed = false;
  /** Once the spool is sorted (adoptSorted): the files holding its rows (sorted copies, and segments kept as they are). */
  private sortedFiles: string[] | null = null;
  // Appends are copied into buffers of the spool's own (allocated on the first append), not kept as
  // references to the encoder's output: that output is handed back to the decode workers for reuse,
  // and a new buffer per batch made V8 run a full GC every ~60 ms on external-memory pressure.
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
    this.indexFd = openSync(this.indexPath, 'w');
    this.openSegment();
  }

  private openSegment(): void {
    const k = this.segs.length;
    const path = numberedPath(this.path, k);
    const seg: OpenSegment = { path, bytes: 0, inOrder: true, fd: -1, chunk: null, chunkBytes: k === 0 ? WRITE_CHUNK_BYTES : SEGMENT_CHUNK_BYTES, used: 0, lastReceivedAt: -Infinity };
    this.segs.push(seg); // before the open: discard() removes what was pushed
    seg.fd = openSync(path, 'w');
  }

  /**
   * The segment of a new event id: the first event takes the first segment, later ones a fresh
   * segment while there is room, else the last (which then interleaves events: no longer in order).
   */
  private segmentFor(id: number): number {
    if (id === 0) return 0;
    if (this.segs.length < MAX_SEGMENTS) this.openSegment();
    else this.segs[this.segs.length - 1]!.inOrder = false;
    return this.segs.length - 1;
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
        this.segmentOf.push(this.segmentFor(id));
      }
      return id;
    });
    if (this.index === null) {
      this.index = Buffer.allocUnsafeSlow(INDEX_CHUNK_ENTRIES * INDEX_ENTRY_BYTES);
      this.indexF64 = new Float64Array(this.index.buffer, 0, 2 * INDEX_CHUNK_ENTRIES);
      this.indexU32 = new Uint32Array(this.index.buffer, 0, 4 * INDEX_CHUNK_ENTRIES);
    }
    const f64 = this.indexF64!;
    const u32 = this.indexU32!;
    const offsets = src.offsets;
    // Consecutive rows of one segment are copied in one call.
    let runSeg = -1;
    let runStart = 0;
    for (let k = 0; k < rows; k++) {
      const i = from + k;
      const r = src.receivedAt[i]!;
      const id = ids.length === 0 ? 0 : ids[src.eventOf[i]!]!;
      const s = ids.length === 0 ? 0 : this.segmentOf[id]!;
      const seg = this.segs[s]!;
      if (r < seg.lastReceivedAt) seg.inOrder = false;
      seg.lastReceivedAt = r;
      if (this.indexUsed === INDEX_CHUNK_ENTRIES) this.drainIndex();
      const e = this.indexUsed++;
      f64[2 * e] = r;
      u32[4 * e + 2] = id;
      u32[4 * e + 3] = offsets[i + 1]! - offsets[i]!;
      if (s !== runSeg) {
        if (runSeg >= 0) this.appendBytes(this.segs[runSeg]!, src.bytes, offsets[runStart]!, offsets[i]!);
        runSeg = s;
        runStart = i;
      }
    }
    if (runSeg >= 0) this.appendBytes(this.segs[runSeg]!, src.bytes, offsets[runStart]!, offsets[rows + from]!);
    this.bytes += offsets[rows + from]! - offsets[from]!;
    this.rows += rows;
    const r = this.ranges.get(shard);
    if (r === undefined) this.ranges.set(shard, { first, last });
    else r.last = last;
  }

  /** Copies `src[start, end)` into the segment's write buffer, writing it out as it fills; long runs go straight to the file. */
  private appendBytes(seg: OpenSegment, src: Uint8Array, start: number, end: number): void {
    seg.bytes += end - start;
    seg.chunk ??= Buffer.allocUnsafeSlow(seg.chunkBytes);
    const chunk = seg.chunk;
    while (start < end) {
      if (seg.used === 0 && end - start >= chunk.length) {
        writeFully(seg.fd, src, start, end);
        return;
      }
      const n = Math.min(end - start, chunk.length - seg.used);
      chunk.set(src.subarray(start, start + n), seg.used);
      seg.used += n;
      start += n;
      if (seg.used === chunk.length) drainSegment(seg);
    }
  }

  private drainIndex(): void {
    if (this.indexUsed > 0) writeFully(this.indexFd, this.index!, 0, this.indexUsed * INDEX_ENTRY_BYTES);
    this.indexUsed = 0;
  }

  /**
   * True while every segment is in the file's order: each holds one event name (or, outside tracks,
   * none) and its receivedAt never decreased, as when input arrives in time order. Such a spool is
   * written from its segments as they are, without a sorted copy.
   */
  get inOrder(): boolean {
    return this.segs.every((s) => s.inOrder);
  }

  /**
   * The segment files, with their sizes and order, indexed as `segmentOf` indexes them. A segment
   * may hold no row (its event's rows were all committed by an earlier run, see Ingestor.apply).
   */
  get segments(): SpoolSegment[] {
    return this.segs.map((s) => ({ path: s.path, bytes: s.bytes, inOrder: s.inOrder }));
  }

  /** The non-empty files holding the spool's rows: its segments, or the files adoptSorted took over. */
  get livePaths(): string[] {
    return this.sortedFiles ?? this.segs.filter((s) => s.bytes > 0).map((s) => s.path);
  }

  /**
   * Takes over a sorted copy of the closed spool: `files` (sorted copies, and segments kept as
   * they are) hold its rows from now on, and the segments that were copied are deleted at once.
   * The spool then takes its own size of disk once, not twice, for the rest of its write. The caller
   * makes sure no reader is between listing and reading the old files (the live snapshot lock).
   */
  async adoptSorted(files: string[]): Promise<void> {
    this.close();
    this.sortedFiles = files;
    const kept = new Set(files);
    for (const s of this.segs) if (!kept.has(s.path)) await fsp.rm(s.path, { force: true });
  }

  /** Writes what is buffered to the segment files (so a live query can read every row appended so far). */
  flushToDisk(): void {
    if (!this.closed) this.drain();
  }

  private drain(): void {
    for (const s of this.segs) drainSegment(s);
    this.drainIndex();
  }

  /** Writes what is buffered and closes the segment and index files; the buffer takes no more rows. */
  close(): void {
    if (this.closed) return;
    this.drain();
    for (const s of this.segs) {
      if (s.fd >= 0) closeSync(s.fd);
      s.fd = -1;
      s.chunk = null;
    }
    closeSync(this.indexFd);
    this.closed = true;
    this.index = this.indexF64 = this.indexU32 = null;
  }

  /** Removes the segment files, the sorted copies it adopted and the index file. */
  async discard(): Promise<void> {
    this.close();
    for (const p of new Set([...this.segs.map((s) => s.path), ...(this.sortedFiles ?? [])])) await fsp.rm(p, { force: true });
    await fsp.rm(this.indexPath, { force: true });
  }
}

/** Writes out what the segment's buffer holds. */
function drainSegment(seg: OpenSegment): void {
  if (seg.used > 0) writeFully(seg.fd, seg.chunk!, 0, seg.used);
  seg.used = 0;
}

/** Writes `src[start, end)` at the file's end; a short write resumes where it stopped. */
function writeFully(fd: number, src: Uint8Array, start: number, end: number): void {
  while (start < end) start += writeSync(fd, src, start, end - start);
}
