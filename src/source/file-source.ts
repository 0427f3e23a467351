import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { BufferPool } from '../buffer-pool.ts';
import { InputError } from '../errors.ts';
import type { RecordBatch, Source } from './source.ts';

/**
 * Bytes of (decompressed) content hashed into an input's shard id. Inputs are treated as append-only
 * logs: a file that grew keeps its id (its first 64 KiB are unchanged), so ingesting it again adds
 * only the new lines. Files that share their first 64 KiB are taken for versions of one log.
 */
const FINGERPRINT_BYTES = 64 * 1024;
/** Bytes of NDJSON per batch handed to the pipeline (the unit of work of a decode worker). */
const CHUNK_BYTES = 1024 * 1024;
/** Recycled batch buffers a source keeps (the pipeline holds a few batches in flight). */
const MAX_SPARE = 8;

export interface FileSourceOptions {
  /** Longest line accepted, in bytes; longer lines are dead-lettered with their first 64 KiB. Default 1 MiB; memory cost: one such line. */
  maxLineChars?: number;
  /** Stream used for '-', default process.stdin. */
  stdin?: Readable;
  /**
   * receivedAt for events of `path` that carry neither receivedAt nor timestamp; undefined falls back
   * to the file's modification time. (The Segment S3 layout's day directory gives a better one.)
   */
  fallbackReceivedAt?: (path: string) => number | undefined;
}

/**
 * NDJSON replay from files (`.ndjson`, `.jsonl`, `.json`, any of them gzipped; gzip is detected by its
 * magic bytes) or '-' for standard input. Each input is one shard, named by a hash of its first 64 KiB
 * of content, so re-reading the same data (even under another name, or gzipped) maps to the same
 * shard and positions (line numbers), which is what makes re-ingest idempotent.
 */
export class FileSource implements Source {
  readonly name = 'file';
  private readonly inputs: string[];
  private readonly maxLineChars: number;
  private readonly stdin: Readable | undefined;
  private readonly fallbackFor: ((path: string) => number | undefined) | undefined;
  private bytesRead = 0;
  /** Read buffers free for reuse, and every read buffer this source made (see readFile). */
  private readonly chunkPool = new BufferPool(MAX_SPARE, CHUNK_BYTES);
  private readonly pooled = new WeakSet<ArrayBufferLike>();
  /** Batch buffers handed back (recycle), reused for later batches. */
  private readonly spare = new BufferPool(MAX_SPARE, 2 * CHUNK_BYTES);
  private totalBytes: number | null = null;

  constructor(inputs: string[], options: FileSourceOptions = {}) {
    if (inputs.length === 0) throw new InputError('no input files given (use - for standard input)');
    this.inputs = inputs;
    this.maxLineChars = options.maxLineChars ?? 1024 * 1024;
    this.stdin = options.stdin;
    this.fallbackFor = options.fallbackReceivedAt;
  }

  /** Takes back a batch's bytes once decoded: the next batch is cut into the same memory. */
  recycle(bytes: Uint8Array): void {
    this.spare.put(bytes.buffer as ArrayBuffer);
  }

  progress(): { bytes: number; totalBytes: number | null } {
    return { bytes: this.bytesRead, totalBytes: this.totalBytes };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<RecordBatch> {
    // Check every input up front: a typo in the 9th file should fail before the first is ingested.
    const stats = new Map<string, { size: number; mtimeMs: number }>();
    for (const input of this.inputs) {
      if (input === '-') continue;
      try {
        const st = await fsp.stat(input);
        if (!st.isFile()) throw new InputError(`input ${input} is not a file`);
        stats.set(input, { size: st.size, mtimeMs: Math.floor(st.mtimeMs) });
      } catch (err) {
        if (err instanceof InputError) throw err;
        throw new InputError(`cannot read input ${input}: ${(err as Error).message}`, { cause: err });
      }
    }
    this.totalBytes = this.inputs.includes('-') ? null : [...stats.values()].reduce((a, s) => a + s.size, 0);
    for (const input of this.inputs) {
      const st = stats.get(input);
      const raw: AsyncIterable<Buffer> = input === '-' ? (this.stdin ?? process.stdin) : this.readFile(input);
      yield* this.readOne(input, raw, (input === '-' ? undefined : this.fallbackFor?.(input)) ?? st?.mtimeMs ?? Date.now());
    }
  }

  /**
   * The bytes of a file in chunks of reused buffers: a chunk goes back to the pool once its bytes
   * are copied into a batch (releaseChunk). A new buffer per read made V8 collect garbage every
   * ~60 ms on external-memory pressure, with the reading thread paused each time.
   */
  private async *readFile(path: string): AsyncGenerator<Buffer> {
    const fh = await fsp.open(path, 'r');
    try {
      for (;;) {
        const ab = this.chunkPool.take(CHUNK_BYTES);
        this.pooled.add(ab);
        const buf = Buffer.from(ab, 0, CHUNK_BYTES);
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) {
          this.chunkPool.put(ab);
          return;
        }
        yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  }

  /** A chunk's bytes are no longer needed: a pooled read buffer is reused for a later read. */
  private releaseChunk(chunk: Buffer): void {
    if (this.pooled.has(chunk.buffer)) this.chunkPool.put(chunk.buffer as ArrayBuffer);
  }

  private async *readOne(label: string, raw: AsyncIterable<Buffer>, fallbackMs: number): AsyncGenerator<RecordBatch> {
    const chunks = this.decompressed(label, raw);
    try {
      yield* this.linesOf(chunks, fallbackMs);
    } finally {
      await chunks.return(undefined); // read to the end, or stopped early: either way the file is closed
    }
  }

  private async *linesOf(chunks: AsyncGenerator<Buffer>, fallbackMs: number): AsyncGenerator<RecordBatch> {
    // Fingerprint: hash the first 64 KiB before emitting anything.
    const head: Buffer[] = [];
    let headBytes = 0;
    let done = false;
    while (headBytes < FINGERPRINT_BYTES) {
      const n = await chunks.next();
      if (n.done) {
        done = true;
        break;
      }
      head.push(n.value);
      headBytes += n.value.length;
    }
    const headBuf = Buffer.concat(head);
    for (const h of head) this.releaseChunk(h);
    const shard = 'f' + createHash('sha256').update(headBuf.subarray(0, FINGERPRINT_BYTES)).digest('hex').slice(0, 24);
    const maxLineBytes = this.maxLineChars;
    let nextLine = 1n; // 1-based number of the next line
    // Bytes read and not yet emitted, as the chunks they came in (no copy until a batch is cut):
    // complete lines first, then maybe an incomplete last line.
    let parts: Buffer[] = [];
    let partsBytes = 0;
    let completeBytes = 0; // of partsBytes, those up to and including the last newline
    let skipping: { head: string; bytes: number } | null = null; // inside an over-long line
    /** Cuts the complete lines into one batch of its own buffer (transferable to a worker); keeps the tail. */
    const takeBuffer = (bytes: number) => this.spare.take(bytes);
    const release = (chunk: Buffer) => this.releaseChunk(chunk);
    const emit = function* (): Generator<RecordBatch> {
      if (completeBytes === 0) return;
      const out = Buffer.from(takeBuffer(completeBytes), 0, completeBytes);
      let off = 0;
      let i = 0;
      for (; i < parts.length && off < completeBytes; i++) {
        const p = parts[i]!;
        const take = Math.min(p.length, completeBytes - off);
        out.set(take === p.length ? p : p.subarray(0, take), off);
        off += take;
        if (take < p.length) {
          parts[i] = p.subarray(take);
          break;
        }
        release(p); // the rest of its read buffer (parts end where their chunk ends)
      }
      parts = parts.slice(i);
      partsBytes -= completeBytes;
      completeBytes = 0;
      let lines = 0;
      for (let j = out.indexOf(10); j >= 0; j = out.indexOf(10, j + 1)) lines++;
      const bytes = new Uint8Array(out.buffer, out.byteOffset, out.length);
      yield { shard, fallbackReceivedAtMs: fallbackMs, records: [], ndjson: { bytes, firstPosition: nextLine, lines, startsFile: nextLine === 1n } };
      nextLine += BigInt(lines);
    };
    const feed = function* (chunk: Buffer): Generator<RecordBatch> {
      let buf = chunk;
      if (skipping !== null) {
        const nl = buf.indexOf(10);
        if (nl < 0) {
          skipping.bytes += buf.length;
          release(buf);
          return;
        }
        skipping.bytes += nl;
        yield { shard, fallbackReceivedAtMs: fallbackMs, records: [{ position: nextLine, data: skipping.head, oversizeBytes: skipping.bytes }] };
        nextLine++;
        skipping = null;
        buf = buf.subarray(nl + 1);
      }
      if (buf.length === 0) return;
      const last = buf.lastIndexOf(10);
      parts.push(buf);
      partsBytes += buf.length;
      if (last >= 0) completeBytes = partsBytes - buf.length + last + 1;
      if (partsBytes - completeBytes > maxLineBytes) {
        // A line longer than the limit: keep its head for the dead letter, count the rest.
        yield* emit();
        const tail = Buffer.concat(parts);
        for (const p of parts) release(p);
        skipping = { head: tail.subarray(0, 64 * 1024).toString('utf8'), bytes: tail.length };
        parts = [];
        partsBytes = 0;
      }
      if (completeBytes >= CHUNK_BYTES) yield* emit();
    };
    yield* feed(headBuf);
    if (!done) {
      for (;;) {
        const n = await chunks.next();
        if (n.done) break;
        yield* feed(n.value);
      }
    }
    const cut = skipping as { head: string; bytes: number } | null; // assigned inside feed()
    if (cut !== null) {
      yield* emit();
      yield { shard, fallbackReceivedAtMs: fallbackMs, records: [{ position: nextLine, data: cut.head, oversizeBytes: cut.bytes }] };
    } else if (partsBytes > completeBytes) {
      yield* feed(Buffer.from('\n')); // a last line without a newline is still a line
    }
    yield* emit();
  }

  /** Bytes of the input, gunzipped when it starts with the gzip magic number. */
  private async *decompressed(label: string, raw: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const it = raw[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let first: IteratorResult<Buffer>;
    try {
      first = await it.next();
    } catch (err) {
      throw new InputError(`cannot read input ${label}: ${(err as Error).message}`, { cause: err });
    }
    if (first.done) return;
    const firstBuf = Buffer.from(first.value);
    const gz = firstBuf.length >= 2 && firstBuf[0] === 0x1f && firstBuf[1] === 0x8b;
    const self = this;
    // Chunks are passed on as they come (streams never reuse a chunk they handed out); the batch
    // cut from them is the one copy.
    async function* rest(): AsyncGenerator<Buffer> {
      try {
        self.bytesRead += firstBuf.length;
        yield firstBuf;
        for (;;) {
          const n = await it.next();
          if (n.done) return;
          self.bytesRead += n.value.length;
          yield n.value;
        }
      } finally {
        await it.return?.(); // stopped early: the file is closed now, not by the garbage collector
      }
    }
    if (!gz) {
      yield* rest();
      return;
    }
    const gunzip = createGunzip({ chunkSize: 256 * 1024 });
    let stopped = false; // the reader stopped before the end: the feeder stops too, closing the file
    const feeder = (async () => {
      try {
        for await (const c of rest()) {
          if (stopped) break;
          if (!gunzip.write(c) && !gunzip.destroyed) await new Promise((r) => (gunzip.once('drain', r), gunzip.once('close', r)));
          if (stopped) break;
        }
        if (!stopped) gunzip.end();
      } catch (err) {
        gunzip.destroy(err as Error);
      }
    })();
    let ended = false;
    try {
      for await (const c of gunzip) yield c as Buffer;
      ended = true;
    } catch (err) {
      ended = true;
      throw new InputError(`cannot decompress ${label}: ${(err as Error).message}`, { cause: err });
    } finally {
      if (!ended) {
        stopped = true;
        gunzip.destroy();
      }
      await feeder;
    }
  }
}
