import { promises as fsp, openSync, writeSync, closeSync } from 'node:fs';
import type { DecodedEvent } from '../events/decode.ts';

/** The inclusive range of positions of one shard held by a file. */
export interface PositionRange {
  first: bigint;
  last: bigint;
}

/** Characters buffered in memory before they are written to the spool file. */
const WRITE_CHUNK_CHARS = 256 * 1024;

/**
 * The rows of one (table, partition) not yet in a Parquet file, spooled to a local NDJSON file so
 * memory stays bounded whatever the target file size. Each spool line is
 * `{"m":messageId,"r":receivedAtMs,"t":…,"o":…,"s":…,"e":<the raw event JSON>}`: the raw event is
 * copied, not re-serialized, and DuckDB extracts the columns when the file is written.
 */
export class SpoolBuffer {
  readonly table: string;
  /** Ordered partition key/value pairs. */
  readonly partition: ReadonlyArray<readonly [string, string]>;
  readonly path: string;
  /** Input characters spooled (drives size-based rotation, deterministic in the input). */
  bytes = 0;
  rows = 0;
  /** Wall-clock time of the first row, for the time cap. */
  readonly openedAtMs: number;
  /** Per shard, the positions this buffer holds. */
  readonly ranges = new Map<string, PositionRange>();
  private fd: number;
  private pending: string[] = [];
  private pendingChars = 0;

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

  /** Appends one event. Positions of a shard must arrive in increasing order. */
  append(ev: DecodedEvent, shard: string, position: bigint): void {
    const line =
      '{"m":' + JSON.stringify(ev.messageId) +
      ',"r":' + ev.receivedAtMs +
      ',"t":' + (ev.timestampMs ?? 'null') +
      ',"o":' + (ev.originalTimestampMs ?? 'null') +
      ',"s":' + (ev.sentAtMs ?? 'null') +
      ',"e":' + ev.raw + '}\n';
    this.pending.push(line);
    this.pendingChars += line.length;
    this.bytes += line.length;
    this.rows++;
    const r = this.ranges.get(shard);
    if (r === undefined) this.ranges.set(shard, { first: position, last: position });
    else r.last = position;
    if (this.pendingChars >= WRITE_CHUNK_CHARS) this.drain();
  }

  private drain(): void {
    if (this.pending.length === 0) return;
    writeSync(this.fd, this.pending.join(''));
    this.pending = [];
    this.pendingChars = 0;
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
