import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { RecordBatch } from '../source/source.ts';
import type { Storage } from '../storage/storage.ts';
import { rangeFileName, rangeFileNameRange } from './file-names.ts';

const gzipAsync = promisify(gzip);
const MiB = 1024 * 1024;
/** Compressions queued (each a copy of up to one batch) before add() waits for them. */
const MAX_QUEUED = 8;

/** The shard and record range a raw-copy object's name (`…/<shard>-<first>-<last>.ndjson.gz`) holds, or null for another name. */
export function rawCopyFileRange(key: string): { shard: string; first: bigint; last: bigint } | null {
  return rangeFileNameRange(key, '.ndjson.gz');
}

interface Piece {
  first: bigint;
  last: bigint;
  file: string;
  handle: fsp.FileHandle;
  /** Input bytes in the piece (before compression). */
  bytes: number;
  /** When its first record was added (wall clock). */
  openedAtMs: number;
  /** Compressed members appended in order. */
  chain: Promise<void>;
  queued: number;
}

/**
 * The optional lossless raw copy of DESIGN §4: every record as the source delivered it (before
 * validation, invalid ones too), gzip'd, at `_raw/<source>/dt=<day written>/<shard>-<first>-<last>.ndjson.gz`.
 * Pieces are spooled to local disk (memory stays at a few batches) and stored when they reach
 * `pieceBytes` of input or `maxAgeMs` of age, at a shard's hand-over and at the end; the ingest
 * never checkpoints a source position past the last record stored (storedThrough). Names carry the
 * record positions they hold (rangeFileName, as dead letters): after a crash the copy recovers its
 * high-water mark per shard from them, and a replay copies no record twice.
 * A piece is a series of gzip members, which gunzip, Node's zlib and DuckDB read as one stream.
 */
export class RawCopySink {
  private readonly hwm = new Map<string, bigint>();
  private readonly pieces = new Map<string, Piece>();
  private readonly storing = new Set<Promise<void>>();
  private seq = 0;

  constructor(
    private readonly storage: Storage,
    private readonly source: string,
    private readonly spoolDir: string,
    private readonly pieceBytes = 256 * MiB,
    /** A piece is stored once its first record is this old (ms), so a quiet stream's checkpoints move on. */
    private readonly maxAgeMs = 15 * 60_000,
    /** The source's fence (Source.fence): throws when this process may no longer write for the shard. */
    private readonly fence?: (shards: readonly string[]) => Promise<void>,
  ) {}

  /** The last record position of `shard` the stored pieces hold (a checkpoint must not pass it), or undefined. */
  storedThrough(shard: string): bigint | undefined {
    return this.hwm.get(shard);
  }

  /** Stores the pieces whose first record is maxAgeMs old; true when it stored any. */
  async storeAged(now = Date.now()): Promise<boolean> {
    const aged = [...this.pieces].filter(([, p]) => now - p.openedAtMs >= this.maxAgeMs).map(([shard]) => shard);
    for (const shard of aged) await this.store(shard);
    return aged.length > 0;
  }

  private get prefix(): string {
    return `_raw/${this.source}`;
  }

  /** Reads the per-shard high-water marks of pieces already stored. */
  async recover(): Promise<void> {
    for (const o of await this.storage.list(this.prefix, { recursive: true })) {
      const r = rawCopyFileRange(o.key);
      if (r !== null && (this.hwm.get(r.shard) ?? -1n) < r.last) this.hwm.set(r.shard, r.last);
    }
  }

  /**
   * Copies the batch's records that no earlier run copied. `ndjsonBytes`: an NDJSON batch's bytes
   * when they came back from a decode worker (the batch's own were transferred to it). Call before
   * the source reuses the buffer.
   */
  async add(batch: RecordBatch, ndjsonBytes?: Uint8Array): Promise<void> {
    const stored = this.hwm.get(batch.shard) ?? -1n;
    const held = this.pieces.get(batch.shard)?.last ?? -1n;
    const done = stored > held ? stored : held;
    let first: bigint;
    let last: bigint;
    let bytes: Buffer;
    const nd = batch.ndjson;
    if (nd !== undefined) {
      if (nd.lines === 0) return;
      first = nd.firstPosition;
      last = first + BigInt(nd.lines) - 1n;
      if (last <= done) return;
      let start = 0;
      // Records up to the mark were copied by an earlier run: skip their lines.
      const all = ndjsonBytes ?? nd.bytes;
      for (let skip = done - first + 1n; skip > 0n; skip--) start = all.indexOf(0x0a, start) + 1;
      if (done >= first) first = done + 1n;
      bytes = Buffer.from(all.subarray(start)); // a copy: the source reuses its buffer
      if (bytes.length > 0 && bytes[bytes.length - 1] !== 0x0a) bytes = Buffer.concat([bytes, Buffer.from('\n')]);
    } else {
      const fresh = batch.records.filter((r) => r.position > done);
      if (fresh.length === 0) return;
      first = fresh[0]!.position;
      last = fresh.at(-1)!.position;
      bytes = Buffer.from(fresh.map((r) => r.data + '\n').join(''), 'utf8');
    }
    let piece = this.pieces.get(batch.shard);
    if (piece === undefined) {
      const file = path.join(this.spoolDir, `raw-${++this.seq}.ndjson.gz`);
      piece = { first, last, file, handle: await fsp.open(file, 'w'), bytes: 0, openedAtMs: Date.now(), chain: Promise.resolve(), queued: 0 };
      this.pieces.set(batch.shard, piece);
    }
    piece.last = last;
    piece.bytes += bytes.length;
    const p = piece;
    p.queued++;
    // Compressed on libuv's threads, appended in order; the reading thread goes on meanwhile.
    p.chain = p.chain.then(async () => {
      const gz = await gzipAsync(bytes, { level: 1 });
      await p.handle.write(gz);
      p.queued--;
    });
    p.chain.catch(() => undefined); // a failure surfaces when the piece is stored, not as an unhandled rejection
    if (p.queued >= MAX_QUEUED) await p.chain;
    if (p.bytes >= this.pieceBytes) await this.store(batch.shard);
  }

  /** Stores every piece: afterwards the copy holds every record added so far. */
  async flush(): Promise<void> {
    for (const shard of [...this.pieces.keys()]) await this.store(shard);
    // Pieces add() is storing (rotated by size) hold records added before this call too.
    await Promise.all([...this.storing]);
  }

  /** Stores the shard's piece; until it is stored, flush() waits for it too. */
  private store(shard: string): Promise<void> {
    const p = this.pieces.get(shard);
    if (p === undefined) return Promise.resolve();
    this.pieces.delete(shard);
    const done = this.storePiece(shard, p);
    this.storing.add(done);
    void done.finally(() => this.storing.delete(done)).catch(() => undefined);
    return done;
  }

  private async storePiece(shard: string, p: Piece): Promise<void> {
    try {
      await p.chain;
    } finally {
      await p.handle.close();
    }
    // A shard taken over by another consumer is copied by it from the checkpoint: storing this piece
    // too would copy its records twice. The fence throws, the run fails and the piece is discarded.
    await this.fence?.([shard]);
    const day = new Date().toISOString().slice(0, 10);
    await this.storage.putFile(`${this.prefix}/dt=${day}/${rangeFileName(shard, p.first, p.last, '.ndjson.gz')}`, p.file);
    await fsp.rm(p.file, { force: true });
    if ((this.hwm.get(shard) ?? -1n) < p.last) this.hwm.set(shard, p.last); // pieces of a shard may finish out of order
  }

  /** Drops the pieces not stored (a failed run: its checkpoint never passed them, so a replay copies them again). */
  async discard(): Promise<void> {
    for (const p of this.pieces.values()) {
      await p.chain.catch(() => undefined);
      await p.handle.close().catch(() => undefined);
      await fsp.rm(p.file, { force: true });
    }
    this.pieces.clear();
  }
}
