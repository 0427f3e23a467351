import { EventEmitter } from 'node:events';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { ConfigError, StorageError } from '../errors.ts';
import { SUB_POSITION_BITS, type RecordBatch, type Source } from './source.ts';

/** Where appended records go: durable when append resolves. */
export interface EventLog {
  /** Appends records (one JSON text each, without newlines); resolves once they are durable (fsynced, or accepted by Kinesis). */
  append(records: string[]): Promise<unknown>;
  /** Stops taking appends; waits for those in flight. */
  close(): Promise<void>;
}

export interface LocalLogOptions {
  /** A segment is closed and a new one started beyond this size. Default 64 MiB. */
  segmentBytes?: number;
  /** Closed segments fully behind the checkpoint are deleted once older than this (ms). Default 1 h. */
  retentionMs?: number;
}

const SEGMENT = /^seg-(\d{20})\.ndjson$/;
const segName = (first: bigint) => `seg-${first.toString().padStart(20, '0')}.ndjson`;

/**
 * An append-only local log of records, in segment files `seg-<first position>.ndjson` under `dir`
 * (one record a line; positions are global line numbers from 1). Appends are grouped: records of
 * concurrent appends share one write and one fsync, so throughput grows with concurrency. A torn
 * last line left by a crash (never acknowledged: acknowledgment follows fsync) is cut off on open.
 */
export class LocalLog implements EventLog {
  readonly dir: string;
  private readonly segmentBytes: number;
  private readonly retentionMs: number;
  private fh!: FileHandle;
  private segFirst = 1n;
  private segSize = 0;
  /** Position the next record gets. */
  private nextPos = 1n;
  private queue: Array<{ records: string[]; resolve: (r: { first: bigint; last: bigint }) => void; reject: (e: Error) => void }> = [];
  private writing: Promise<void> | null = null;
  private closed = false;
  /** Emits 'append' with the last durable position. */
  readonly events = new EventEmitter();

  private constructor(dir: string, o: LocalLogOptions) {
    this.dir = dir;
    this.segmentBytes = o.segmentBytes ?? 64 * 1024 * 1024;
    this.retentionMs = o.retentionMs ?? 3_600_000;
    if (!Number.isFinite(this.segmentBytes) || this.segmentBytes < 1024) throw new ConfigError(`log segmentBytes: ${o.segmentBytes} is not valid; expected at least 1024`);
  }

  /** Opens (creating) the log in `dir`, repairing a torn tail. */
  static async open(dir: string, options: LocalLogOptions = {}): Promise<LocalLog> {
    const log = new LocalLog(dir, options);
    await fsp.mkdir(dir, { recursive: true });
    const segs = await listSegments(dir);
    const last = segs.at(-1);
    if (last === undefined) {
      log.segFirst = 1n;
      log.nextPos = 1n;
    } else {
      const p = path.join(dir, last.name);
      const bytes = await fsp.readFile(p);
      const end = bytes.lastIndexOf(10) + 1; // drop a torn last line
      if (end !== bytes.length) await fsp.truncate(p, end);
      let lines = 0;
      for (let i = bytes.indexOf(10); i >= 0 && i < end; i = bytes.indexOf(10, i + 1)) lines++;
      log.segFirst = last.first;
      log.nextPos = last.first + BigInt(lines);
      log.segSize = end;
    }
    log.fh = await fsp.open(path.join(dir, segName(log.segFirst)), 'a');
    return log;
  }

  /** The position the next appended record will get. */
  get nextPosition(): bigint {
    return this.nextPos;
  }

  append(records: string[]): Promise<{ first: bigint; last: bigint }> {
    if (this.closed) return Promise.reject(new StorageError('the log is closed'));
    for (const r of records) {
      if (r.includes('\n')) return Promise.reject(new StorageError('a log record must not contain a newline'));
    }
    if (records.length === 0) return Promise.resolve({ first: this.nextPos, last: this.nextPos - 1n });
    return new Promise((resolve, reject) => {
      this.queue.push({ records, resolve, reject });
      this.writing ??= this.drain();
    });
  }

  /** Writes queued appends in groups: one write and one fsync per group. */
  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.queue;
        this.queue = [];
        try {
          if (this.segSize >= this.segmentBytes) await this.roll();
          const text = group.map((g) => g.records.join('\n') + '\n').join('');
          const buf = Buffer.from(text);
          await this.fh.write(buf);
          await this.fh.sync();
          this.segSize += buf.length;
          for (const g of group) {
            const first = this.nextPos;
            this.nextPos += BigInt(g.records.length);
            g.resolve({ first, last: this.nextPos - 1n });
          }
          this.events.emit('append', this.nextPos - 1n);
        } catch (err) {
          const e = new StorageError(`cannot append to the log in ${this.dir}: ${(err as Error).message}`, { retriable: true, cause: err });
          for (const g of group) g.reject(e);
        }
      }
    } finally {
      this.writing = null;
    }
  }

  private async roll(): Promise<void> {
    await this.fh.close();
    this.segFirst = this.nextPos;
    this.segSize = 0;
    this.fh = await fsp.open(path.join(this.dir, segName(this.segFirst)), 'a');
    // The new segment's name must survive a crash before its first record does.
    const d = await fsp.open(this.dir, 'r');
    await d.sync().catch(() => undefined);
    await d.close();
  }

  /** Deletes closed segments whose records are all at or before `checkpoint` and older than the retention. */
  async prune(checkpoint: bigint): Promise<number> {
    const segs = await listSegments(this.dir);
    let deleted = 0;
    for (let i = 0; i + 1 < segs.length; i++) {
      const nextFirst = segs[i + 1]!.first;
      if (nextFirst - 1n > checkpoint || segs[i]!.first === this.segFirst) break;
      const p = path.join(this.dir, segs[i]!.name);
      const st = await fsp.stat(p);
      if (Date.now() - st.mtimeMs < this.retentionMs) break;
      await fsp.rm(p, { force: true });
      deleted++;
    }
    return deleted;
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.writing !== null) await this.writing;
    await this.fh.close();
  }
}

async function listSegments(dir: string): Promise<Array<{ name: string; first: bigint }>> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return [];
  }
  return names
    .map((name) => ({ name, m: SEGMENT.exec(name) }))
    .filter((x) => x.m !== null)
    .map((x) => ({ name: x.name, first: BigInt(x.m![1]!) }))
    .sort((a, b) => (a.first < b.first ? -1 : 1));
}

const CHECKPOINT = 'checkpoint.json';

/**
 * Reads a LocalLog as a Source (shard `log-0`, positions = log positions), from just after the
 * saved checkpoint, following new appends until aborted. Checkpoints are saved in the log's
 * directory after the pipeline has committed everything up to them.
 */
export class LocalLogSource implements Source {
  readonly name = 'log';
  private readonly dir: string;
  private readonly log: LocalLog | null;
  private follow: boolean;
  private wake: (() => void) | null = null;
  private readonly signal: AbortSignal | undefined;
  private readonly pollMs: number;
  private readBytes = 0;

  /**
   * @param dir the log directory
   * @param options.log the live LocalLog of this process, to be woken by its appends (otherwise the files are polled)
   * @param options.follow keep waiting for new records at the end (default true)
   */
  constructor(dir: string, options: { log?: LocalLog; follow?: boolean; signal?: AbortSignal; pollMs?: number } = {}) {
    this.dir = dir;
    this.log = options.log ?? null;
    this.follow = options.follow ?? true;
    this.signal = options.signal;
    this.pollMs = options.pollMs ?? 200;
  }

  progress(): { bytes: number; totalBytes: number | null } {
    return { bytes: this.readBytes, totalBytes: null };
  }

  /** Stops following: the source reads to the log's current end and then ends (a graceful stop drains the log). */
  finish(): void {
    this.follow = false;
    this.wake?.();
  }

  /** The saved checkpoint: every record at or before it is committed. */
  async savedCheckpoint(): Promise<bigint> {
    try {
      return BigInt((JSON.parse(await fsp.readFile(path.join(this.dir, CHECKPOINT), 'utf8')) as { position: string }).position);
    } catch {
      return 0n;
    }
  }

  async checkpoint(_shard: string, position: bigint): Promise<void> {
    // Event positions carry the index inside a record in their low bits: the last record whose
    // every event is at or before `position`.
    const recordPos = ((position + 1n) >> SUB_POSITION_BITS) - 1n;
    if (recordPos < 1n) return;
    const tmp = path.join(this.dir, `.${CHECKPOINT}.${process.pid}.tmp`);
    await fsp.writeFile(tmp, JSON.stringify({ position: recordPos.toString(), at: new Date().toISOString() }));
    await fsp.rename(tmp, path.join(this.dir, CHECKPOINT));
    await this.log?.prune(recordPos);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<RecordBatch> {
    let next = (await this.savedCheckpoint()) + 1n; // first position not yet known committed
    // The segment being read: its handle, the byte offset of `next` in it.
    let cur: { fh: FileHandle; first: bigint; off: number } | null = null;
    let tail: Buffer = Buffer.alloc(0); // an incomplete last line read so far
    try {
      for (;;) {
        if (this.signal?.aborted) return;
        const segs = await listSegments(this.dir);
        if (cur === null) {
          const i = segs.findLastIndex((s) => s.first <= next);
          if (i < 0) {
            if (segs.length > 0 && segs[0]!.first > next) throw new StorageError(`the log in ${this.dir} starts at ${segs[0]!.first}, after the checkpoint ${next - 1n}: records were deleted before they were committed`);
            if (!this.follow) return;
            await this.waitForAppend();
            continue;
          }
          const seg = segs[i]!;
          const fh = await fsp.open(path.join(this.dir, seg.name), 'r');
          // Find the byte offset of `next` in the segment.
          let off = 0;
          if (seg.first < next) {
            const bytes = await fh.readFile();
            for (let p = seg.first; p < next; p++) {
              const nl = bytes.indexOf(10, off);
              if (nl < 0) throw new StorageError(`log segment ${seg.name} ends before position ${next}`);
              off = nl + 1;
            }
          }
          cur = { fh, first: seg.first, off };
          tail = Buffer.alloc(0);
        }
        const size = (await cur.fh.stat()).size;
        if (size > cur.off) {
          const buf = Buffer.allocUnsafe(Math.min(size - cur.off, 4 * 1024 * 1024));
          const { bytesRead } = await cur.fh.read(buf, 0, buf.length, cur.off);
          cur.off += bytesRead;
          const data = tail.length > 0 ? Buffer.concat([tail, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
          const end = data.lastIndexOf(10) + 1;
          tail = Buffer.from(data.subarray(end));
          if (end > 0) {
            const chunk = new Uint8Array(data.subarray(0, end)); // a copy of its own, transferable to a worker
            let lines = 0;
            for (let k = chunk.indexOf(10); k >= 0; k = chunk.indexOf(10, k + 1)) lines++;
            this.readBytes += chunk.length;
            yield { shard: 'log-0', fallbackReceivedAtMs: Date.now(), records: [], ndjson: { bytes: chunk, firstPosition: next, lines, startsFile: false } };
            next += BigInt(lines);
          }
          continue;
        }
        // At the end of this segment: move on if a newer one exists (this one is closed then).
        if (segs.some((s) => s.first > cur!.first) && tail.length === 0) {
          await cur.fh.close();
          cur = null;
          continue;
        }
        if (!this.follow) return;
        await this.waitForAppend();
      }
    } finally {
      await cur?.fh.close();
    }
  }

  private waitForAppend(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.wake = null;
        clearTimeout(t);
        this.log?.events.off('append', done);
        this.signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, this.pollMs);
      this.wake = done;
      this.log?.events.once('append', done);
      this.signal?.addEventListener('abort', done, { once: true });
    });
  }
}
