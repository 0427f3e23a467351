import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { InputError } from '../errors.ts';
import type { RecordBatch, Source } from './source.ts';

/** Bytes of (decompressed) content hashed into a file's shard id. */
const FINGERPRINT_BYTES = 1024 * 1024;
/** Records per batch handed to the pipeline. */
const BATCH_RECORDS = 2000;

export interface FileSourceOptions {
  /** Longest line accepted, in characters; longer lines are cut and dead-lettered. Default 1 MiB; memory cost: one such line. */
  maxLineChars?: number;
  /** Stream used for '-', default process.stdin. */
  stdin?: Readable;
}

/**
 * NDJSON replay from files (`.ndjson`, `.jsonl`, `.json`, any of them gzipped; gzip is detected by its
 * magic bytes) or '-' for standard input. Each input is one shard, named by a hash of its first MiB
 * of content, so re-reading the same data (even under another name, or gzipped) maps to the same
 * shard and positions (line numbers), which is what makes re-ingest idempotent.
 */
export class FileSource implements Source {
  readonly name = 'file';
  private readonly inputs: string[];
  private readonly maxLineChars: number;
  private readonly stdin: Readable | undefined;
  private bytesRead = 0;
  private totalBytes: number | null = null;

  constructor(inputs: string[], options: FileSourceOptions = {}) {
    if (inputs.length === 0) throw new InputError('no input files given (use - for standard input)');
    this.inputs = inputs;
    this.maxLineChars = options.maxLineChars ?? 1024 * 1024;
    this.stdin = options.stdin;
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
      const raw: Readable = input === '-' ? (this.stdin ?? process.stdin) : createReadStream(input, { highWaterMark: 1024 * 1024 });
      yield* this.readOne(input, raw, st?.mtimeMs ?? Date.now());
    }
  }

  private async *readOne(label: string, raw: Readable, fallbackMs: number): AsyncGenerator<RecordBatch> {
    const chunks = this.decompressed(label, raw);
    // Fingerprint: hash the first MiB before emitting anything.
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
    const shard = 'f' + createHash('sha256').update(headBuf.subarray(0, FINGERPRINT_BYTES)).digest('hex').slice(0, 24);
    let carry = '';
    let oversize = 0; // >0 while skipping the rest of an over-long line
    let lineNo = 0n;
    let batch: RecordBatch = { shard, fallbackReceivedAtMs: fallbackMs, records: [] };
    const self = this;
    function* consume(text: string): Generator<RecordBatch> {
      let start = 0;
      for (;;) {
        const nl = text.indexOf('\n', start);
        if (nl < 0) break;
        const piece = text.slice(start, nl);
        start = nl + 1;
        lineNo++;
        if (oversize > 0) {
          batch.records.push({ position: lineNo, data: carry, oversizeBytes: oversize + Buffer.byteLength(piece) });
          oversize = 0;
          carry = '';
        } else {
          let line = carry.length > 0 ? carry + piece : piece;
          carry = '';
          if (line.endsWith('\r')) line = line.slice(0, -1);
          if (lineNo === 1n && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
          if (line.trim().length === 0) continue; // blank lines are not records
          if (line.length > self.maxLineChars) {
            batch.records.push({ position: lineNo, data: line.slice(0, 64 * 1024), oversizeBytes: Buffer.byteLength(line) });
          } else {
            batch.records.push({ position: lineNo, data: line });
          }
        }
        if (batch.records.length >= BATCH_RECORDS) {
          yield batch;
          batch = { shard, fallbackReceivedAtMs: fallbackMs, records: [] };
        }
      }
      const rest = text.slice(start);
      if (oversize > 0) {
        oversize += Buffer.byteLength(rest);
      } else {
        carry += rest;
        if (carry.length > self.maxLineChars) {
          // Keep only the head of an over-long line; count the rest.
          oversize = Buffer.byteLength(carry);
          carry = carry.slice(0, 64 * 1024);
        }
      }
    }
    // Decode up to the last newline of each chunk and carry the rest as bytes: a newline byte never
    // occurs inside a multi-byte UTF-8 sequence, and Buffer#toString is far faster than StringDecoder.
    let tail: Buffer = Buffer.alloc(0);
    const decodeChunk = (chunk: Buffer): string => {
      const buf = tail.length > 0 ? Buffer.concat([tail, chunk]) : chunk;
      const nl = buf.lastIndexOf(10);
      if (nl < 0) {
        tail = buf;
        if (tail.length > self.maxLineChars * 3) {
          tail = Buffer.alloc(0);
          return buf.toString('utf8'); // an over-long line: hand it on, consume() cuts it
        }
        return '';
      }
      tail = buf.subarray(nl + 1);
      return buf.toString('utf8', 0, nl + 1);
    };
    yield* consume(decodeChunk(headBuf));
    if (!done) {
      for (;;) {
        const n = await chunks.next();
        if (n.done) break;
        yield* consume(decodeChunk(n.value));
      }
    }
    yield* consume(tail.toString('utf8') + '\n'); // a last line without a newline is still a line
    if (batch.records.length > 0) yield batch;
  }

  /** Bytes of the input, gunzipped when it starts with the gzip magic number. */
  private async *decompressed(label: string, raw: Readable): AsyncGenerator<Buffer> {
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
    async function* rest(): AsyncGenerator<Buffer> {
      self.bytesRead += firstBuf.length;
      yield firstBuf;
      for (;;) {
        const n = await it.next();
        if (n.done) return;
        self.bytesRead += n.value.length;
        yield Buffer.from(n.value);
      }
    }
    if (!gz) {
      yield* rest();
      return;
    }
    const gunzip = createGunzip();
    const feeder = (async () => {
      try {
        for await (const c of rest()) {
          if (!gunzip.write(c)) await new Promise((r) => gunzip.once('drain', r));
        }
        gunzip.end();
      } catch (err) {
        gunzip.destroy(err as Error);
      }
    })();
    try {
      for await (const c of gunzip) yield c as Buffer;
    } catch (err) {
      throw new InputError(`cannot decompress ${label}: ${(err as Error).message}`, { cause: err });
    }
    await feeder;
  }
}
