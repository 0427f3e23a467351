import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { partitionKey, type Catalog } from '../catalog/catalog.ts';
import { PartitionGuard } from '../catalog/partition-guard.ts';
import { resolvePromote, type PromoteConfig, type PromotedColumn } from '../events/promote.ts';
import { DEFAULT_TABLE_OF, EVENT_TYPES, columnsFor, type EventType } from '../events/schema.ts';
import { TributaryError, WriterError, badOption } from '../errors.ts';
import { partitionPath } from '../partition/hive-path.ts';
import { PARTITION_FIELDS, parsePartitionSpec, partitionWindowEnd, type PartitionField } from '../partition/spec.ts';
import { SUB_POSITION_BITS, eventPosition, recordPosition, refusedBySource, type RecordBatch, type Source } from '../source/source.ts';
import type { Storage } from '../storage/storage.ts';
import { openDuckDB, type DuckDBOptions } from '../writer/duckdb.ts';
import { parquetWriteMemory, writeParquet, type Compression } from '../writer/parquet-file.ts';
import { SpoolBuffer, type LiveSnapshot, type LiveSpool } from '../writer/spool.ts';
import { SpoolSorter } from '../writer/spool-sorter.ts';
import { RawCopySink } from './raw-copy.ts';
import { DeadLetterSink } from './dead-letters.ts';
import { Serial } from './serial.ts';
import { DecodePool } from './decode-pool.ts';
import type { EncodedBatch, EncoderInput } from './encoder.ts';
import { RANGES_METADATA_KEY, dataFileName, rangesJson } from './file-names.ts';
import { recoverTable, type RecoveredTable } from './recovery.ts';
import { encoderConfig, tableLayouts, type TableLayout } from './tables.ts';

const MiB = 1024 * 1024;
/** Batches decoded ahead of the one being applied. */
const PIPELINE_DEPTH = 4;
/** The largest index of an event inside a record. */
const MAX_SUB = Number((1n << SUB_POSITION_BITS) - 1n);
/**
 * Finished files that may wait for their commit per write slot: commits go in order, so a small
 * file written beside a large one waits for it; bounded so local disk stays bounded when commits
 * (uploads) are slower than writes.
 */
const UNCOMMITTED_PER_SLOT = 4;

/**
 * The order of the writes once input ends: largest first, so the small files fill the gaps beside
 * the long writes; but the largest spool that needs no sort goes second, so that it is written
 * beside the first sort instead of a second write slot waiting for the sort worker.
 */
function finalFlushOrder(bufs: SpoolBuffer[]): SpoolBuffer[] {
  const order = bufs.sort((a, b) => b.bytes - a.bytes);
  const i = order.findIndex((b) => b.inOrder);
  if (i > 1 && !order[0]!.inOrder) order.splice(1, 0, ...order.splice(i, 1));
  return order;
}

/** The encoder's input for a source batch. */
export function encoderInput(batch: RecordBatch): EncoderInput {
  const ctx = { fallbackReceivedAtMs: batch.fallbackReceivedAtMs, stampReceivedAt: batch.stampReceivedAt ?? false };
  if (batch.ndjson !== undefined) return { kind: 'ndjson', bytes: batch.ndjson.bytes, ctx, firstLineOfFile: batch.ndjson.startsFile };
  const texts = batch.records.map((r) => (refusedBySource(r) ? null : r.data));
  if (!batch.records.some((r) => r.receivedAtMs !== undefined)) return { kind: 'records', texts, ctx };
  return { kind: 'records', texts, ctx, fallbacks: batch.records.map((r) => r.receivedAtMs ?? batch.fallbackReceivedAtMs) };
}

/** Options of an ingest run. Each is validated when the Ingestor is built. */
export interface IngestOptions {
  /** Target Parquet file size in bytes. Default 512 MiB (Athena's sweet spot is 256 MiB–1 GiB); at least 1 KiB. Disk cost: about `targetFileBytes × inputBytesPerOutputByte` of spool per open partition. */
  targetFileBytes?: number;
  /** Longest a row waits (wall clock from its partition's first row) before its file is flushed, ms. Default 15 min, as Firehose's longest buffer. */
  maxFileAgeMs?: number;
  /**
   * A partition is complete once the input's newest receivedAt (never later than the wall clock) is
   * this far past the end of its time window (its `dt` day, or its `hour`): its file is then written
   * as soon as a write slot is free, rather than at its size, the time cap or the input's end. A row
   * arriving later still lands, in a new file of the partition. Default 1 h; null: never; ignored
   * without `dt` in the partition spec. Spares disk (a day's spool goes once the day is over) and,
   * for history replayed in time order, overlaps the writes with the reading.
   */
  closeAfterMs?: number | null;
  /** Partition fields, in path order. Default ['dt']. */
  partitionBy?: readonly string[] | string;
  /** Partitions held open at once; the oldest is flushed beyond it. Default 64. Memory cost: ~256 KiB of write buffer and two open files each, a tracks partition up to ~2.2 MiB and 33 files (one segment per event name, see writer/spool.ts). */
  maxOpenPartitions?: number;
  /** Parquet codec. Default 'zstd'. */
  compression?: Compression;
  /**
   * zstd level, 1 (fastest) to 22 (smallest). Default 1: measured on 1 M events, a quarter less CPU
   * for the Parquet write than DuckDB's default 3, for files ~4% larger (compaction rewrites them
   * at its own level). Only with zstd.
   */
  compressionLevel?: number;
  /** Initial estimate of spooled input bytes per Parquet byte, refined from each file written. Default 5. */
  inputBytesPerOutputByte?: number;
  /** Table name per event type. Default tracks, identifies, pages, screens, groups, aliases. */
  tables?: Partial<Record<EventType, string>>;
  /**
   * Keys of `properties` (track, page, screen) or `traits` (identify, group) written as typed columns
   * of their own, per event type: `{ track: { revenue: 'double', order_id: { path: '$.order.id' } } }`
   * (types string, bigint, double, boolean; default string, path `$.<column>`). A value not of its
   * column's type is NULL there and stays in the JSON column. A column's type never changes once
   * in the catalog. Default none beyond tracks' experiment_name and variation_name. Memory cost: none;
   * CPU: the keys of an event type are extracted from its JSON in one pass per row when files are written.
   */
  promote?: PromoteConfig;
  /** Where spool files go. Default `<lake>/_tributary/spool` for a local lake, the OS temp dir otherwise. */
  spoolDir?: string;
  /** DuckDB limits for the Parquet writer. Default memory limit 768 MB, one thread per write (see maxConcurrentWrites). */
  duckdb?: DuckDBOptions;
  /**
   * Parquet writes running at once, each sorting its spool then converting it on one DuckDB thread
   * (unless `duckdb.threads` says otherwise). Default: one per core. Memory cost: each holds about
   * three Parquet row groups (a row group holds ~64 MiB of spool: ~200 MB a write); see writeMemoryBytes.
   */
  maxConcurrentWrites?: number;
  /**
   * Most spool bytes held in memory while a spool is sorted before its Parquet write (a larger one
   * is sorted in runs and merged). Default 256 MiB, at least 1 MiB. Memory cost: up to this much,
   * kept by the sort worker between writes (fresh memory costs more than reused memory on VMs),
   * plus ~40 bytes a row of the spool being sorted (~200 MB for a 5 GB spool of 1 KB events).
   */
  sortMemoryBytes?: number;
  /**
   * Estimated memory the Parquet writes in flight may hold together (three row groups each, see
   * maxConcurrentWrites); a write waits while it would exceed this, one write always runs. Default
   * 1 GiB: about five writes of ~200 MB side by side, as cores allow. Peak RSS stays under about
   * 300 MB + this + sortMemoryBytes.
   */
  writeMemoryBytes?: number;
  /** Worker threads that decode and validate input; 0 decodes on the main thread. Default: one per core (the main thread mostly waits). Memory cost: ~4 MiB each in flight. */
  decodeWorkers?: number;
  /**
   * Also keep a lossless copy of the input as the source delivered it (invalid records too), gzip'd,
   * under `_raw/<source>/dt=<day>/` (DESIGN §4): a stream's only full record once its retention
   * passes, for re-ingesting after a fix. Default false. Cost: gzip level 1 on libuv's threads
   * (measured: 5–7 core-s and +40–50% time for 924 MB of input), local disk for one piece per shard (up
   * to 256 MiB of input, compressed) until it is stored (by size or maxFileAgeMs); checkpoints wait
   * for the pieces.
   */
  rawCopy?: boolean;
  /** Called about once a second and at the end. */
  onProgress?: (stats: IngestStats) => void;
  /** Aborting stops reading; everything read so far is flushed and committed. */
  signal?: AbortSignal;
}

/** What an ingest run did. `read = written + deadLettered + skipped`. */
export interface IngestStats {
  /** Events read (members of a batch envelope count one each; an undecodable record counts one). */
  read: number;
  /** Rows written to Parquet files. */
  written: number;
  /** Records sent to the dead letters. */
  deadLettered: number;
  /** Events skipped because an earlier run had already committed them. */
  skipped: number;
  /** Parquet files committed. */
  files: number;
  /** Bytes of Parquet committed. */
  bytes: number;
  seconds: number;
  /** Input bytes read so far, and in total when known. */
  inputBytes: number;
  inputTotalBytes: number | null;
}

interface Resolved {
  targetFileBytes: number;
  maxFileAgeMs: number;
  closeAfterMs: number | null;
  partitionBy: PartitionField[];
  maxOpenPartitions: number;
  compression: Compression;
  compressionLevel: number | undefined;
  ratio: number;
  tables: Record<EventType, string>;
  promoted: Partial<Record<EventType, PromotedColumn[]>>;
  maxConcurrentWrites: number;
  sortMemoryBytes: number;
  writeMemoryBytes: number;
  decodeWorkers: number;
}

function intOption(name: string, v: number | undefined, dflt: number, min: number, max: number, unit = ''): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) badOption(name, v, `a number from ${min}${unit} to ${max}${unit}`);
  return v;
}

/** Checks and defaults IngestOptions; throws ConfigError naming the bad value and its limits. */
export function resolveIngestOptions(o: IngestOptions): Resolved {
  const tables = { ...DEFAULT_TABLE_OF };
  for (const [type, name] of Object.entries(o.tables ?? {})) {
    if (!(EVENT_TYPES as readonly string[]).includes(type)) badOption('tables', type, `an event type (${EVENT_TYPES.join(', ')})`);
    if (typeof name !== 'string' || !/^[a-z_][a-z0-9_]{0,127}$/.test(name)) badOption(`tables.${type}`, name, 'a lower-case table name ([a-z_][a-z0-9_]*)');
    tables[type as EventType] = name;
  }
  if (new Set(Object.values(tables)).size !== EVENT_TYPES.length) badOption('tables', o.tables, 'a distinct table per event type');
  if (o.compression !== undefined && o.compression !== 'zstd' && o.compression !== 'snappy') badOption('compression', o.compression, "'zstd' or 'snappy'");
  if (o.compressionLevel !== undefined && o.compression === 'snappy') badOption('compressionLevel', o.compressionLevel, 'no level with snappy (levels apply to zstd)');
  return {
    targetFileBytes: intOption('targetFileBytes', o.targetFileBytes, 512 * MiB, 1024, 4 * 1024 * MiB, ' bytes'),
    maxFileAgeMs: intOption('maxFileAgeMs', o.maxFileAgeMs, 15 * 60_000, 0, 24 * 3_600_000, ' ms'),
    closeAfterMs: o.closeAfterMs === null ? null : intOption('closeAfterMs', o.closeAfterMs, 3_600_000, 0, 31 * 86_400_000, ' ms'),
    partitionBy: parsePartitionSpec(o.partitionBy ?? ['dt']),
    maxOpenPartitions: intOption('maxOpenPartitions', o.maxOpenPartitions, 64, 1, 10_000),
    compression: o.compression ?? 'zstd',
    compressionLevel: o.compression === 'snappy' ? undefined : intOption('compressionLevel', o.compressionLevel, 1, 1, 22),
    ratio: intOption('inputBytesPerOutputByte', o.inputBytesPerOutputByte, 5, 0.1, 1000),
    tables,
    promoted: resolvePromote(o.promote, (type) => [...columnsFor(type).map((c) => c.name), ...Object.keys(PARTITION_FIELDS)]),
    maxConcurrentWrites: intOption('maxConcurrentWrites', o.maxConcurrentWrites, Math.min(os.availableParallelism(), 16), 1, 16),
    sortMemoryBytes: intOption('sortMemoryBytes', o.sortMemoryBytes, 256 * MiB, MiB, 64 * 1024 * MiB, ' bytes'),
    writeMemoryBytes: intOption('writeMemoryBytes', o.writeMemoryBytes, 1024 * MiB, 64 * MiB, 1024 * 1024 * MiB, ' bytes'),
    decodeWorkers: intOption('decodeWorkers', o.decodeWorkers, os.availableParallelism(), 0, 64),
  };
}

/**
 * The ingest pipeline: source → decode/validate → route to (table, partition) → spool → Parquet →
 * storage → catalog → checkpoint (DESIGN §2). Exactly-once across crashes by deterministic file
 * names and high-water marks recovered from committed files (DESIGN §5.1–5.2).
 */
export class Ingestor {
  private readonly storage: Storage;
  private readonly catalog: Catalog;
  private readonly opts: Resolved;
  private readonly raw: IngestOptions;
  private readonly layouts: Map<EventType, TableLayout>;

  constructor(storage: Storage, catalog: Catalog, options: IngestOptions = {}) {
    this.storage = storage;
    this.catalog = catalog;
    this.raw = options;
    this.opts = resolveIngestOptions(options);
    this.layouts = tableLayouts(this.opts.tables, this.opts.partitionBy, this.opts.promoted);
  }

  private current: IngestRun | null = null;

  /** Reads `source` to its end (or until aborted), committing everything read. */
  async run(source: Source): Promise<IngestStats> {
    const run = new IngestRun(this.storage, this.catalog, this.opts, this.raw, this.layouts, source);
    this.current = run;
    try {
      return await run.execute();
    } finally {
      this.current = null;
    }
  }

  /**
   * Runs `fn` on a consistent snapshot: the live (not yet committed) rows it is given, and the
   * committed files it lists, with no commit in between (DESIGN §5.4). No run: no live rows.
   */
  snapshot<T>(fn: (live: LiveSnapshot) => Promise<T>): Promise<T> {
    return this.current === null ? fn({ spools: [], tables: [...this.layouts.values()].map((l) => l.def) }) : this.current.snapshot(fn);
  }
}

export type { LiveSnapshot, LiveSpool };

/** The state of one run; separate from Ingestor so an Ingestor can be reused. */
class IngestRun {
  private readonly started = Date.now();
  private readonly stats: IngestStats = { read: 0, written: 0, deadLettered: 0, skipped: 0, files: 0, bytes: 0, seconds: 0, inputBytes: 0, inputTotalBytes: null };
  private readonly open = new Map<string, SpoolBuffer>();
  /** Per open buffer whose partition can close, the watermark at which it is complete (closeAfterMs). */
  private readonly closesAt = new Map<SpoolBuffer, number>();
  /** Newest receivedAt read so far, ms, never later than the wall clock (a row stamped in the future must not close today's partitions). */
  private watermark = -Infinity;
  /** The smallest of closesAt's values: one comparison per batch while nothing is due. */
  private nextClose = Infinity;
  private readonly recovered = new Map<string, RecoveredTable>();
  private readonly tablesEnsured = new Set<string>();
  private readonly ratio = new Map<string, number>();
  private readonly lastRead = new Map<string, bigint>();
  /** Writes DuckDB is running (each holds a write slot and its estimated memory). */
  private readonly inFlight = new Set<Promise<void>>();
  /** Writes started and not yet committed (finished files wait on local disk for their turn to commit). */
  private readonly uncommitted = new Set<Promise<void>>();
  /** Estimated memory of the writes in flight (parquetWriteMemory), against writeMemoryBytes. */
  private writeMemory = 0;
  /** Buffers being written, for checkpoints (their rows are not committed yet). */
  private readonly writing = new Set<SpoolBuffer>();
  private commitChain: Promise<void> = Promise.resolve();
  private failure: unknown = null;
  private spoolDir = '';
  private spoolSeq = 0;
  private duck!: { instance: DuckDBInstance; conn: DuckDBConnection };
  private pool!: DecodePool;
  private sorter!: SpoolSorter;
  private readonly guard: PartitionGuard;
  private deadLetters!: DeadLetterSink;
  private rawCopy: RawCopySink | undefined;
  /** Serializes a commit's visibility step with live snapshots. */
  private readonly visibility = new Serial();
  /** Serializes apply() and the timer's tick(): both change the open buffers. */
  private readonly exclusive = new Serial();

  constructor(
    private readonly storage: Storage,
    private readonly catalog: Catalog,
    private readonly opts: Resolved,
    private readonly raw: IngestOptions,
    private readonly layouts: Map<EventType, TableLayout>,
    private readonly source: Source,
  ) {
    this.guard = new PartitionGuard(storage);
  }

  async execute(): Promise<IngestStats> {
    try {
      await this.prepare();
    } catch (err) {
      // Worker threads and DuckDB opened before the failure would keep the process alive.
      await this.pool?.close();
      this.duck?.conn.closeSync();
      if (this.spoolDir !== '') await fsp.rm(this.spoolDir, { recursive: true, force: true });
      throw err;
    }
    // Quiet sources must still flush on the time cap, and stop promptly on abort: a timer does both.
    const every = Math.max(50, Math.min(1000, Math.floor(this.opts.maxFileAgeMs / 2)));
    const timer = setInterval(() => {
      this.exclusive.run(() => this.tick()).catch((err) => {
        this.failure ??= err;
      });
    }, every);
    let onAbort = () => undefined as void;
    const aborted = new Promise<'aborted'>((resolve) => {
      onAbort = () => resolve('aborted');
      if (this.raw.signal?.aborted) resolve('aborted');
      this.raw.signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      // Up to PIPELINE_DEPTH batches are being decoded while the oldest is applied, in order.
      const queue: Array<{ batch: RecordBatch; encoded: Promise<EncodedBatch> }> = [];
      const it = this.source[Symbol.asyncIterator]();
      let pending: Promise<IteratorResult<RecordBatch>> | null = null;
      const applyHead = async () => {
        const head = queue.shift()!;
        const enc = await head.encoded;
        await this.exclusive.run(async () => this.apply(head.batch, enc));
        this.consumed(enc);
      };
      for (;;) {
        pending ??= it.next();
        // Apply decoded batches as soon as they are ready, not only when the queue is full: a quiet
        // source must not hold rows back from the time cap.
        const ready = queue.length > 0 ? queue[0]!.encoded.then(() => 'ready' as const, () => 'ready' as const) : null;
        const next = await Promise.race([pending, aborted, ...(ready ? [ready] : [])]);
        if (next === 'aborted') {
          void pending.catch(() => undefined);
          void it.return?.(); // do not wait: a source blocked on a quiet stream would hold us
          break;
        }
        if (next === 'ready') {
          await applyHead();
          continue;
        }
        pending = null;
        if (next.done) break;
        const batch = next.value;
        const encoded = this.pool.encode(encoderInput(batch));
        encoded.catch(() => undefined); // awaited in order below
        queue.push({ batch, encoded });
        if (queue.length >= PIPELINE_DEPTH) await applyHead();
        if (this.failure !== null) throw this.failure;
      }
      while (queue.length > 0) await applyHead();
      clearInterval(timer);
      await this.exclusive.idle();
      // Input is done: the decode workers' heaps are freed before the last (often largest) Parquet writes.
      await this.pool.close();
      for (const buf of finalFlushOrder([...this.open.values()])) await this.flush(buf);
      await this.drain();
      await this.deadLetters.flush();
      await this.rawCopy?.flush();
      await this.checkpoint();
    } catch (err) {
      // Let writes and commits already started finish or fail, so no DuckDB query outlives the run.
      await Promise.allSettled([...this.inFlight]);
      await this.commitChain;
      throw err;
    } finally {
      clearInterval(timer);
      this.raw.signal?.removeEventListener('abort', onAbort); // a reused signal (restarted runs) must not collect listeners
      await this.exclusive.idle();
      for (const buf of this.open.values()) await buf.discard();
      this.open.clear();
      await this.rawCopy?.discard();
      await this.pool?.close();
      await this.sorter?.close();
      this.duck?.conn.closeSync();
      await fsp.rm(this.spoolDir, { recursive: true, force: true });
    }
    this.progress();
    return { ...this.stats };
  }

  private async prepare(): Promise<void> {
    const local = this.storage.localPath('_tributary/spool');
    const base = this.raw.spoolDir ?? local ?? path.join(os.tmpdir(), 'tributary-spool');
    await fsp.mkdir(base, { recursive: true });
    await removeStaleSpools(base);
    this.spoolDir = path.join(base, `${process.pid}-${randomBytes(4).toString('hex')}`);
    await fsp.mkdir(this.spoolDir, { recursive: true });
    // Spools are sorted before their write, so DuckDB keeps their order instead of sorting again; one
    // thread per write, writes side by side: measured, DuckDB's parallel write costs more CPU per row.
    this.duck = await openDuckDB({ tempDirectory: path.join(this.spoolDir, 'duckdb'), threads: 1, ...this.raw.duckdb, preserveInsertionOrder: true });
    // One sorter: a sort takes a fraction of its write, and each sorter keeps its buffer (sortMemoryBytes).
    this.sorter = new SpoolSorter(1);
    this.sorter.prestart(); // in the background now, not in the way of the first file's write
    this.pool = new DecodePool(encoderConfig(this.layouts), this.opts.decodeWorkers);
    this.deadLetters = new DeadLetterSink(this.storage, this.source.name);
    await this.deadLetters.recover();
    if (this.raw.rawCopy) {
      const fence = this.source.fence?.bind(this.source);
      this.rawCopy = new RawCopySink(this.storage, this.source.name, this.spoolDir, undefined, this.opts.maxFileAgeMs, fence);
      await this.rawCopy.recover();
    }
  }

  private async recoveredFor(layout: TableLayout): Promise<RecoveredTable> {
    let r = this.recovered.get(layout.table);
    if (r === undefined) {
      r = await recoverTable(this.storage, this.catalog, layout.table, this.source.name);
      this.recovered.set(layout.table, r);
    }
    return r;
  }

  private async deadLetter(shard: string, pos: bigint, reason: string, raw: string, extra?: { rawBytes?: number; rawBase64?: string; meta?: Record<string, string> }): Promise<void> {
    if (this.deadLetters.isDone(shard, pos)) {
      this.stats.skipped++;
      return;
    }
    this.stats.deadLettered++;
    await this.deadLetters.add(shard, pos, reason, raw, extra);
  }

  /**
   * A shard this run has just taken over: files another process committed from it since this run
   * recovered a table are not in the marks yet. Recover them again (marks only ever rise).
   */
  private async refreshShard(shard: string): Promise<void> {
    for (const [table, rec] of this.recovered) {
      const fresh = await recoverTable(this.storage, this.catalog, table, this.source.name);
      for (const [pk, part] of fresh.partitions) if (!rec.partitions.has(pk)) rec.partitions.set(pk, part);
      for (const [pk, m] of fresh.marks) {
        const last = m.get(shard);
        if (last === undefined) continue;
        let cur = rec.marks.get(pk);
        if (cur === undefined) rec.marks.set(pk, (cur = new Map()));
        if ((cur.get(shard) ?? -1n) < last) cur.set(shard, last);
      }
    }
    await this.deadLetters.recover();
    await this.rawCopy?.recover();
  }

  /** A batch is applied: its buffers go back to the decode workers and the source for reuse. */
  private consumed(enc: EncodedBatch): void {
    this.pool.release(enc);
    if (enc.input !== undefined) this.source.recycle?.(enc.input);
  }

  /** Applies one decoded batch: dead letters, then each (table, partition) group into its spool. */
  private async apply(batch: RecordBatch, enc: EncodedBatch): Promise<void> {
    const shard = batch.shard;
    const nd = batch.ndjson;
    const recordPos = (i: number): bigint => recordPosition(batch, i);
    if (batch.acquired) await this.refreshShard(shard);
    await this.rawCopy?.add(batch, enc.input);
    this.stats.read += enc.events;
    for (const inv of enc.invalid) {
      const meta = nd === undefined ? batch.records[inv.record]!.meta : undefined;
      await this.deadLetter(shard, eventPosition(recordPos(inv.record), inv.sub), inv.reason, inv.raw, { ...(meta && { meta }), ...(inv.rawBase64 !== undefined && { rawBase64: inv.rawBase64 }) });
    }
    if (nd === undefined) {
      for (const rec of batch.records) {
        if (rec.rejected !== undefined) {
          this.stats.read++;
          await this.deadLetter(shard, eventPosition(rec.position, 0), rec.rejected, rec.data, { meta: rec.meta });
        } else if (rec.oversizeBytes !== undefined) {
          this.stats.read++;
          await this.deadLetter(shard, eventPosition(rec.position, 0), `record is ${rec.oversizeBytes} bytes, longer than the source accepts`, rec.data, { rawBytes: rec.oversizeBytes, meta: rec.meta });
        }
      }
    }
    if (this.opts.closeAfterMs !== null) {
      let w = this.watermark;
      for (const g of enc.groups) {
        const ra = g.receivedAt;
        for (let i = 0; i < ra.length; i++) if (ra[i]! > w) w = ra[i]!;
      }
      this.watermark = Math.min(w, Date.now());
    }
    for (const g of enc.groups) {
      const layout = this.layouts.get(g.type)!;
      const key = g.table + '\u0000' + g.partKey;
      let buf = this.open.get(key);
      if (buf === undefined) {
        const rec = await this.recoveredFor(layout);
        let marks = rec.marks.get(g.partKey);
        if (marks === undefined) rec.marks.set(g.partKey, (marks = new Map()));
        buf = new SpoolBuffer(layout.table, g.pairs, path.join(this.spoolDir, `${++this.spoolSeq}.ndjson`), Date.now(), marks);
        this.open.set(key, buf);
        const end = partitionWindowEnd(g.pairs);
        // A partition opened after it was complete (a late row) waits for its size or the time cap.
        if (this.opts.closeAfterMs !== null && end !== null && end + this.opts.closeAfterMs > this.watermark) {
          this.closesAt.set(buf, end + this.opts.closeAfterMs);
          this.nextClose = Math.min(this.nextClose, end + this.opts.closeAfterMs);
        }
      }
      const rows = g.record.length;
      const pos = (i: number) => eventPosition(recordPos(g.record[i]!), g.sub[i]!);
      let from = 0;
      const mark = buf.committedMarks.get(shard);
      if (mark !== undefined) while (from < rows && pos(from) <= mark) from++; // committed by an earlier run
      this.stats.skipped += from;
      if (from < rows) {
        buf.append(g, from, shard, pos(from), pos(rows - 1));
        const ratio = this.ratio.get(layout.table) ?? this.opts.ratio;
        if (buf.bytes >= this.opts.targetFileBytes * ratio) await this.flush(buf);
      }
      if (this.open.size > this.opts.maxOpenPartitions) await this.flush(this.open.values().next().value!);
    }
    await this.closeComplete();
    const lastRecord = nd !== undefined ? nd.firstPosition + BigInt(nd.lines) - 1n : batch.records.at(-1)?.position;
    if (lastRecord !== undefined) this.lastRead.set(shard, eventPosition(lastRecord, MAX_SUB));
    if (batch.flushAfter) {
      for (const buf of [...this.open.values()]) await this.flush(buf);
      await this.rawCopy?.flush();
      // Checkpoint even when nothing was left to write (all of it committed before): the source waits for it.
      this.scheduleCheckpoint();
    }
  }

  /** Checkpoints once the commits started so far are done. */
  private scheduleCheckpoint(): void {
    const after = this.commitChain.then(() => (this.failure === null ? this.checkpoint() : undefined));
    this.commitChain = after.catch((err) => {
      this.failure ??= err;
    });
  }

  private layoutOf(table: string): TableLayout {
    return [...this.layouts.values()].find((l) => l.table === table)!;
  }

  /**
   * Runs `fn` with the rows not yet committed (open and being-written spools) while no commit and no
   * append happens: together with the committed files listed inside `fn`, one consistent snapshot.
   */
  snapshot<T>(fn: (live: LiveSnapshot) => Promise<T>): Promise<T> {
    return this.exclusive.run(() =>
      this.visibility.run(async () => {
        const spools: LiveSpool[] = [];
        for (const buf of [...this.open.values(), ...this.writing]) {
          if (buf.rows === 0) continue;
          buf.flushToDisk();
          const layout = this.layoutOf(buf.table);
          spools.push({ table: buf.table, type: layout.type, def: layout.def, paths: buf.livePaths, rows: buf.rows });
        }
        return fn({ spools, tables: [...this.layouts.values()].map((l) => l.def) });
      }),
    );
  }

  /**
   * Writes the partitions that are complete (closeAfterMs), each only when a write can start at
   * once: reading is not held up for them (measured on 1 M events in time order: waiting for a slot
   * left the cores idle and cost ~2 s), a busy one is retried after the next batch or tick.
   */
  private async closeComplete(): Promise<void> {
    if (this.watermark < this.nextClose) return;
    let next = Infinity;
    for (const [buf, at] of [...this.closesAt]) {
      if (at <= this.watermark && this.canStartWrite(parquetWriteMemory(buf.rows, buf.bytes))) await this.flush(buf);
      else next = Math.min(next, at);
    }
    this.nextClose = next;
  }

  /** Whether a write of estimated `memory` can start now (and not too many finished files wait to commit): a slot is free and the memory fits (one write always runs). */
  private canStartWrite(memory: number): boolean {
    if (this.uncommitted.size >= UNCOMMITTED_PER_SLOT * this.opts.maxConcurrentWrites) return false;
    return this.inFlight.size === 0 || (this.inFlight.size < this.opts.maxConcurrentWrites && this.writeMemory + memory <= this.opts.writeMemoryBytes);
  }

  /** From the timer: flush partitions past the time cap or complete, report progress. */
  private async tick(): Promise<void> {
    if (this.failure !== null) return;
    const now = Date.now();
    for (const buf of [...this.open.values()]) {
      if (now - buf.openedAtMs >= this.opts.maxFileAgeMs) await this.flush(buf);
    }
    await this.closeComplete();
    // A raw-copy piece stored by age lets the checkpoint move on in a quiet stream.
    if (await this.rawCopy?.storeAged(now)) this.scheduleCheckpoint();
    this.progress();
  }

  private progress(): void {
    this.stats.seconds = (Date.now() - this.started) / 1000;
    const p = this.source.progress?.();
    if (p !== undefined) {
      this.stats.inputBytes = p.bytes;
      this.stats.inputTotalBytes = p.totalBytes;
    }
    this.raw.onProgress?.({ ...this.stats });
  }

  /** Starts writing `buf` as a Parquet file; its commit is ordered after every earlier one. */
  private async flush(buf: SpoolBuffer): Promise<void> {
    const layout = this.layoutOf(buf.table);
    this.open.delete(buf.table + '\u0000' + partitionKey(buf.partition.map((p) => p[1])));
    this.closesAt.delete(buf);
    if (buf.rows === 0) return buf.discard();
    buf.close();
    this.writing.add(buf);
    const memory = parquetWriteMemory(buf.rows, buf.bytes);
    const outPath = buf.path.replace(/\.ndjson$/, '.parquet');
    // Segments already in the file's order are read as they are; the others are sorted into copies.
    // The sort starts before this write gets its slot: it runs while earlier writes hold the slots,
    // so a slot that frees finds its next spool sorted (measured: DuckDB otherwise waited ~0.3 s a
    // file for the sort). It costs no memory (the sorter's buffer is fixed).
    const segments = buf.segments;
    const copyBytes = segments.reduce((a, sg) => a + (sg.inOrder ? 0 : sg.bytes), 0);
    const sorted = this.sorter.sort(
      { segments, indexPath: buf.indexPath, segmentOf: buf.segmentOf, outPath: buf.path.replace(/\.ndjson$/, '.sorted.ndjson'), rows: buf.rows, events: buf.events, memoryBytes: this.opts.sortMemoryBytes },
      // Nothing to copy: the file list is made inline. Else the whole index is read: the worker's job, unless the spool is small.
      copyBytes === 0 ? 0 : buf.bytes,
    );
    // The spool's rows move to the sorted copy as soon as it exists (under the live-snapshot lock), and
    // the copied segments are deleted then rather than after the write: a spool and its copy are not
    // both on disk while the write waits for a slot and runs.
    const ready = sorted.then(async (r) => {
      if (r.copies.length > 0) await this.visibility.run(() => buf.adoptSorted(r.files));
      return r;
    });
    ready.catch(() => undefined); // awaited by the write below, or dropped with the failure (the spool directory goes with the run)
    while (!this.canStartWrite(memory)) await Promise.race([...this.inFlight, ...this.uncommitted]);
    if (this.failure !== null) throw this.failure;
    const earlier = this.commitChain; // the commits before this one (this one will wait for `written`)
    const write = async (): Promise<number> => {
      const { files } = await ready;
      const conn = await this.duck.instance.connect();
      try {
        return await writeParquet(conn, {
          spoolPaths: files,
          outPath,
          columns: layout.dataColumns,
          expectedRows: buf.rows,
          spoolBytes: buf.bytes,
          compression: this.opts.compression,
          compressionLevel: this.opts.compressionLevel,
          metadata: { [RANGES_METADATA_KEY]: rangesJson(this.source.name, buf.ranges), 'tributary.table': layout.table },
        });
      } finally {
        conn.closeSync();
      }
    };
    const written = write()
      .catch(async (err: unknown) => {
        // Buffers of DuckDB's readers and writers do not spill: one retry, once the writes before it
        // are done and on a single thread (for a duckdb.threads above 1), gets through most squeezes.
        if (!/Out of Memory/i.test(String((err as Error)?.message))) throw err;
        await earlier;
        const threads = Number((await this.duck.conn.runAndReadAll("SELECT current_setting('threads')")).getRows()[0]![0]);
        await this.duck.conn.run('SET threads = 1');
        try {
          return await write();
        } catch (again) {
          throw new WriterError(`${(again as Error).message} (after a single-threaded retry; raise duckdb.memoryLimit, default 768MB)`, { cause: again });
        } finally {
          await this.duck.conn.run(`SET threads = ${threads}`);
        }
      });
    written.catch(() => undefined); // observed through the commit chain below
    const committed = this.commitChain.then(async () => {
      if (this.failure !== null) return;
      await this.commit(buf, layout, outPath, await written);
    });
    const tracked = committed.catch((err) => {
      this.failure ??= err;
    });
    this.commitChain = tracked;
    this.uncommitted.add(tracked);
    void tracked.finally(() => this.uncommitted.delete(tracked));
    // The slot and its memory are free once DuckDB is done, not once the commits before this one are:
    // a finished file waits for its turn to commit on disk, costing no memory (measured: a small write
    // held its slot for as long as a large write beside it ran, and the complete days behind it waited).
    const slot = written.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(slot);
    this.writeMemory += memory;
    void slot.finally(() => {
      this.inFlight.delete(slot);
      this.writeMemory -= memory;
    });
  }

  private async drain(): Promise<void> {
    await this.commitChain;
    await Promise.allSettled([...this.inFlight]);
    if (this.failure !== null) throw this.failure;
  }

  private async commit(buf: SpoolBuffer, layout: TableLayout, localParquet: string, bytes: number): Promise<void> {
    if (!this.tablesEnsured.has(layout.table)) {
      await this.catalog.ensureTable(layout.def);
      this.tablesEnsured.add(layout.table);
    }
    const rec = await this.recoveredFor(layout);
    const values = buf.partition.map((p) => p[1]);
    const pk = partitionKey(values);
    if (!rec.partitions.has(pk)) {
      // Register the partition before its first file appears: Athena may see it empty, never a file outside the catalog.
      await this.catalog.addPartitions(layout.table, [{ values, location: `${layout.table}/${partitionPath(buf.partition)}` }]);
    }
    // Under the partition guard, and with the location read afresh: compaction may have moved it.
    // The file becomes visible and its rows leave the live set in one step for live queries.
    await this.visibility.run(async () => {
      await this.guard.write(layout.table, pk, async () => {
        const find = async () => (await this.catalog.getPartitions(layout.table)).find((p) => partitionKey(p.values) === pk);
        let part = await find();
        if (part === undefined) {
          // Dropped since this run registered it (expiry of a day that still gets late events): the
          // rows are kept, in the partition registered again; the next expiry run drops it again.
          await this.catalog.addPartitions(layout.table, [{ values, location: `${layout.table}/${partitionPath(buf.partition)}` }]);
          part = await find();
        }
        if (part === undefined) throw new TributaryError(`partition ${pk} of ${layout.table} vanished right after it was registered`, { retriable: true });
        rec.partitions.set(pk, part);
        await this.source.fence?.([...buf.ranges.keys()]);
        await this.storage.putFile(`${part.location}/${dataFileName(this.source.name, buf.ranges)}`, localParquet);
      });
      this.writing.delete(buf);
    });
    const marks = buf.committedMarks;
    for (const [shard, r] of buf.ranges) if ((marks.get(shard) ?? -1n) < r.last) marks.set(shard, r.last);
    if (bytes >= MiB) this.ratio.set(layout.table, buf.bytes / bytes);
    this.stats.written += buf.rows;
    this.stats.files++;
    this.stats.bytes += bytes;
    await buf.discard();
    await this.checkpoint();
  }

  /** Tells the source how far each shard is committed: up to the first row still held anywhere. */
  private async checkpoint(): Promise<void> {
    // What was read before the sinks flush is in them once they have; a batch applied meanwhile
    // (apply runs beside this) may have dead letters or raw records still buffered: not passed.
    if (this.source.checkpoint === undefined) return;
    const read = new Map(this.lastRead);
    await this.deadLetters.flush();
    const held = new Map<string, bigint>();
    for (const buf of [...this.open.values(), ...this.writing]) {
      for (const [shard, r] of buf.ranges) if ((held.get(shard) ?? r.first) >= r.first) held.set(shard, r.first);
    }
    for (const [shard, last] of read) {
      const first = held.get(shard);
      let safe = first === undefined || first - 1n > last ? last : first - 1n;
      if (this.rawCopy !== undefined) {
        // Not past what the raw copy has stored: its pieces are stored by size or age, not at each commit.
        const stored = this.rawCopy.storedThrough(shard);
        if (stored === undefined) continue;
        const cap = eventPosition(stored, MAX_SUB);
        if (safe > cap) safe = cap;
      }
      if (safe >= 0n) await this.source.checkpoint(shard, safe);
    }
  }
}

/** Removes spool directories of processes that are no longer running (left by a crash). */
async function removeStaleSpools(base: string): Promise<void> {
  let entries: string[];
  try {
    entries = await fsp.readdir(base);
  } catch {
    return;
  }
  for (const e of entries) {
    const pid = Number(e.split('-')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) await fsp.rm(path.join(base, e), { recursive: true, force: true });
  }
}

