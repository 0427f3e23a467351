import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  type GetShardIteratorCommandInput,
  type KinesisClient,
  type _Record as KinesisRecord,
  type Shard,
} from '@aws-sdk/client-kinesis';
import { createHash, randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { describeKinesisSetupError, isRetriableKinesisError, kinesisClient } from '../aws/kinesis-client.ts';
import { describeSdkError } from '../aws/sdk-errors.ts';
import { ConfigError, LeaseLostError, SourceError, badOption } from '../errors.ts';
import type { Storage } from '../storage/storage.ts';
import { AsyncQueue } from './async-queue.ts';
import { deaggregate, effectiveHashKey } from './kpl.ts';
import { ShardLeases, type HeldLease, type LeaseState } from './shard-leases.ts';
import { SUB_POSITION_BITS, eventPosition, type RecordBatch, type Source, type SourceRecord } from './source.ts';

/** Where a shard without a checkpoint starts. */
export type KinesisStart = { type: 'TRIM_HORIZON' } | { type: 'LATEST' } | { type: 'AT_TIMESTAMP'; at: Date };

/** Parses `trim-horizon`, `latest` or `at-timestamp:<ISO-8601>`. */
export function parseKinesisStart(text: string): KinesisStart {
  if (text === 'trim-horizon') return { type: 'TRIM_HORIZON' };
  if (text === 'latest') return { type: 'LATEST' };
  const m = /^at-timestamp:(.+)$/.exec(text);
  if (m !== null) {
    const at = new Date(m[1]!);
    if (!Number.isNaN(at.getTime()) && /^\d{4}-\d{2}-\d{2}T/.test(m[1]!)) return { type: 'AT_TIMESTAMP', at };
  }
  return badOption('--start', text, 'trim-horizon, latest or at-timestamp:<ISO-8601 time>, e.g. at-timestamp:2026-11-20T00:00:00Z');
}

/** Options of a Kinesis source. Each is validated when the source is built. */
export interface KinesisSourceOptions {
  /** Stream name. */
  stream: string;
  /** The lake's storage: leases, checkpoints and consumer heartbeats go under `_tributary/kinesis/<stream>/`. */
  storage: Storage;
  /** A ready client; otherwise one is made from region/endpoint and the standard AWS sources. */
  client?: KinesisClient;
  region?: string;
  endpoint?: string;
  /** Where shards without a checkpoint start. Default trim-horizon. Shards born after the first run always start at their beginning. */
  start?: KinesisStart | string;
  /** This consumer's name in leases and logs. Default `<hostname>-<pid>`. */
  consumerName?: string;
  /** A shard lease lasts this long without renewal; a dead consumer's shards are taken over after it. Default 30 s, at least 1 s. */
  leaseTimeoutMs?: number;
  /** How often the shard list, leases and balance are reviewed, ms. Default 10 s. */
  shardSyncMs?: number;
  /** Wait after a GetRecords that returned nothing, ms. Default 1000 (Kinesis allows 5 calls/s per shard). */
  idlePollMs?: number;
  /** Records asked for per GetRecords call. Default 10000 (the maximum). Memory cost: up to 10 MB per call in flight. */
  recordsPerCall?: number;
  /** Record batches read ahead of the pipeline (all shards together). Default 16. */
  queueBatches?: number;
  /** Receives one line per shard of progress every logIntervalMs, and notable events (take-over, resharding). */
  onLog?: (line: string) => void;
  /** Default 10 s. */
  logIntervalMs?: number;
}

/** Bits of a record position that number the events of one Kinesis record (KPL sub-records, NDJSON lines). */
const SUB_RECORD_BITS = 16n;
const MAX_SUB_RECORDS = 1 << Number(SUB_RECORD_BITS);
/** Event positions shifted right by this give the sequence number. */
const SEQ_SHIFT = SUB_RECORD_BITS + SUB_POSITION_BITS;
/** Per-shard read limit of Kinesis: 2 MB/s. */
const SHARD_BYTES_PER_S = 2 * 1024 * 1024;
/** Per-shard call limit of Kinesis: 5 GetRecords/s. */
const MIN_CALL_GAP_MS = 200;

/** A shard's checkpoint as stored. */
interface CheckpointBody {
  /** Every event at or below this position is committed (decimal). */
  position: string;
  /** Where to resume: at this sequence number (partly committed) or after it. */
  sequenceNumber: string;
  resume: 'AT' | 'AFTER';
  /** Read to its end and every record committed: children may start. */
  closed: boolean;
  by: string;
  at: string;
}

interface ShardReader {
  shard: string;
  lease: HeldLease;
  /** Stop reading (released or stopping). */
  halt: boolean;
  /** Hand the shard over once what was read is committed. */
  releasing: boolean;
  ended: boolean;
  /** Sequence-number ranges of GetRecords results read and not yet checkpointed past. */
  reads: Array<{ start: bigint; end: bigint; firstText: string; lastText: string }>;
  lastSeq: string | undefined;
  /** Event position of the end of the last record read. */
  lastEventPos: bigint | undefined;
  committedPos: bigint | undefined;
  waiters: Array<{ pos: bigint; resolve: () => void }>;
  records: number;
  recordsAtLastLog: number;
  behindMs: number | undefined;
  files: number;
  task: Promise<void>;
  /** Checkpoint writes of the shard, in order (two puts of one key may land in either order). */
  writes: Promise<void>;
}


function intOption(name: string, v: number | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < min || v > max) badOption(name, v, `an integer from ${min} to ${max}`);
  return v;
}

/** The source name for a stream: `kinesis-<stream>`, shortened with a hash so file names stay under 255 bytes. */
export function kinesisSourceName(stream: string): string {
  if (stream.length <= 48) return `kinesis-${stream}`;
  return `kinesis-${stream.slice(0, 32)}-${createHash('sha256').update(stream).digest('hex').slice(0, 8)}`;
}

/**
 * Reads a Kinesis stream by polling (ListShards, GetShardIterator, GetRecords), as one of several
 * consumer processes sharing its shards through leases in the lake's storage (DESIGN §5).
 *
 * Positions are `sequenceNumber << 16 | sub-record` (KPL sub-records and NDJSON lines of one record),
 * so the pipeline's exactly-once rules apply unchanged. A child shard is read only once its parents'
 * checkpoints say they were read to the end and committed. Checkpoints and leases live in
 * `<lake>/_tributary/kinesis/<stream>/`.
 */
export class KinesisSource implements Source {
  readonly name: string;
  readonly stream: string;
  readonly consumerName: string;
  private readonly storage: Storage;
  private readonly client: KinesisClient;
  private readonly endpoint: string | undefined;
  private readonly start: KinesisStart;
  private readonly leases: ShardLeases;
  private readonly shardSyncMs: number;
  private readonly idlePollMs: number;
  private readonly recordsPerCall: number;
  private readonly logIntervalMs: number;
  private readonly onLog: (line: string) => void;
  private readonly queue: AsyncQueue<RecordBatch>;
  private readonly readers = new Map<string, ShardReader>();
  private readonly closedShards = new Set<string>();
  private shards = new Map<string, Shard>();
  /** Shards listed by the first run on this lake; they start at `start`, later ones at their beginning. */
  private initialShards: Set<string> | null = null;
  private began = false;
  private stopped = false;
  private wake: (() => void) | null = null;
  private coordinator: Promise<void> = Promise.resolve();
  private timers: NodeJS.Timeout[] = [];
  private renewing: Promise<void> = Promise.resolve();
  private readonly statePrefix: string;
  /** Resolves when stop() is called: every wait of the readers races it. */
  private readonly halted: Promise<void>;
  private halt!: () => void;

  constructor(o: KinesisSourceOptions) {
    if (typeof o.stream !== 'string' || !/^[a-zA-Z0-9_.-]{1,128}$/.test(o.stream)) badOption('stream', o.stream, 'a Kinesis stream name ([a-zA-Z0-9_.-], 1 to 128 characters)');
    this.stream = o.stream;
    this.name = kinesisSourceName(o.stream);
    this.storage = o.storage;
    this.endpoint = o.endpoint;
    this.client = o.client ?? kinesisClient({ region: o.region, endpoint: o.endpoint });
    this.start = typeof o.start === 'string' ? parseKinesisStart(o.start) : (o.start ?? { type: 'TRIM_HORIZON' });
    this.consumerName = o.consumerName ?? `${os.hostname()}-${process.pid}`;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(this.consumerName)) badOption('consumerName', this.consumerName, 'a name of 1 to 64 characters from [A-Za-z0-9_.-]');
    const ttl = intOption('leaseTimeoutMs', o.leaseTimeoutMs, 30_000, 1_000, 3_600_000);
    this.shardSyncMs = intOption('shardSyncMs', o.shardSyncMs, 10_000, 50, 600_000);
    this.idlePollMs = intOption('idlePollMs', o.idlePollMs, 1_000, MIN_CALL_GAP_MS, 60_000);
    this.recordsPerCall = intOption('recordsPerCall', o.recordsPerCall, 10_000, 1, 10_000);
    this.logIntervalMs = intOption('logIntervalMs', o.logIntervalMs, 10_000, 100, 3_600_000);
    this.queue = new AsyncQueue(intOption('queueBatches', o.queueBatches, 16, 1, 1024));
    this.onLog = o.onLog ?? (() => undefined);
    this.statePrefix = `_tributary/kinesis/${this.name}`;
    this.halted = new Promise((resolve) => (this.halt = resolve));
    this.leases = new ShardLeases(this.storage, `${this.statePrefix}/leases`, `${this.consumerName}#${randomBytes(3).toString('hex')}`, ttl);
  }

  [Symbol.asyncIterator](): AsyncIterator<RecordBatch> {
    if (!this.began) {
      this.began = true;
      this.coordinator = this.coordinate().catch((err) => this.queue.fail(err));
    }
    return {
      next: () => this.queue.pop(),
      return: async () => {
        this.stop();
        return { value: undefined, done: true };
      },
    };
  }

  /** Shards this process holds now. */
  heldShards(): string[] {
    return [...this.readers.keys()].sort();
  }

  /** Stops reading; leases stay held (and renewed) until close(), so what was read can still commit. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.halt();
    for (const r of this.readers.values()) r.halt = true;
    this.wake?.();
    this.queue.close();
  }

  /** Stops, then gives up every lease and the consumer heartbeat: others take the shards over at once. */
  async close(): Promise<void> {
    this.stop();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.coordinator;
    await Promise.allSettled([...this.readers.values()].map((r) => r.task));
    await this.renewing;
    for (const r of this.readers.values()) await this.leases.release(r.lease).catch(() => undefined);
    this.readers.clear();
    await this.storage.delete([this.consumerKey(this.consumerName)]).catch(() => undefined);
  }

  async fence(shards: readonly string[]): Promise<void> {
    for (const shard of shards) {
      const r = this.readers.get(shard);
      if (r === undefined) throw new LeaseLostError(`shard ${shard} is not held by this consumer any more; its rows must not be committed`);
      await this.leases.fence(r.lease);
    }
    for (const shard of shards) this.readers.get(shard)!.files++;
  }

  async checkpoint(shard: string, position: bigint): Promise<void> {
    const r = this.readers.get(shard);
    if (r === undefined || (r.committedPos !== undefined && r.committedPos >= position)) return;
    r.committedPos = position;
    let resume: { seq: string; how: 'AT' | 'AFTER' } | null = null;
    while (r.reads.length > 0) {
      const head = r.reads[0]!;
      if (head.end <= position) {
        resume = { seq: head.lastText, how: 'AFTER' };
        r.reads.shift();
      } else {
        if (head.start <= position) resume = { seq: head.firstText, how: 'AT' };
        break;
      }
    }
    if (resume !== null && this.leases.trusted(r.lease)) {
      // A stale holder would only move it back, which is safe (replays are skipped) but wasteful.
      const { seq, how } = resume;
      await this.queueWrite(r, async () => {
        // An ended shard gets its last checkpoint (closed) from its reader; none may overwrite it.
        if (!r.ended) await this.writeCheckpoint(shard, { position: position.toString(), sequenceNumber: seq, resume: how, closed: false });
      });
    }
    for (const w of r.waiters.splice(0)) {
      if (w.pos <= position) w.resolve();
      else r.waiters.push(w);
    }
  }

  // ------------------------------------------------------------------ state in storage

  private checkpointKey(shard: string): string {
    return `${this.statePrefix}/checkpoints/${shard}.json`;
  }

  private consumerKey(name: string): string {
    return `${this.statePrefix}/consumers/${name}.json`;
  }

  private async readCheckpoint(shard: string): Promise<CheckpointBody | undefined> {
    const raw = await this.storage.get(this.checkpointKey(shard));
    return raw === undefined ? undefined : (JSON.parse(raw.toString('utf8')) as CheckpointBody);
  }

  private async writeCheckpoint(shard: string, c: Omit<CheckpointBody, 'by' | 'at'>): Promise<void> {
    await this.storage.put(this.checkpointKey(shard), JSON.stringify({ ...c, by: this.leases.owner, at: new Date().toISOString() } satisfies CheckpointBody));
  }

  /** Live consumers of this stream on this lake, this one included. */
  private async liveConsumers(): Promise<number> {
    const now = Date.now();
    let live = 0;
    for (const o of await this.storage.list(`${this.statePrefix}/consumers`)) {
      const raw = await this.storage.get(o.key);
      if (raw === undefined) continue;
      try {
        if ((JSON.parse(raw.toString('utf8')) as { expiresAtMs: number }).expiresAtMs > now) live++;
      } catch {
        live++; // being written
      }
    }
    return Math.max(1, live);
  }

  private async beat(): Promise<void> {
    await this.storage.put(this.consumerKey(this.consumerName), JSON.stringify({ owner: this.leases.owner, expiresAtMs: Date.now() + this.leases.ttlMs }));
  }

  // ------------------------------------------------------------------ coordination

  private async coordinate(): Promise<void> {
    await this.listShards(true);
    await this.beat();
    this.onLog(`kinesis ${this.stream}: consuming as ${this.leases.owner} (${this.shards.size} shards listed)`);
    const every = Math.max(100, Math.floor(this.leases.ttlMs / 3));
    this.timers.push(setInterval(() => this.renewAll(), every));
    this.timers.push(setInterval(() => this.logProgress(), this.logIntervalMs));
    for (const t of this.timers) t.unref();
    while (!this.stopped) {
      try {
        await this.sync();
      } catch (err) {
        if (err instanceof ConfigError || !isRetriableKinesisError(err)) throw err;
        this.onLog(`kinesis ${this.stream}: shard sync failed, retrying: ${(err as Error).message}`);
      }
      if (this.stopped) break;
      await Promise.race([
        this.halted,
        new Promise<void>((resolve) => {
          const t = setTimeout(resolve, this.shardSyncMs);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        }),
      ]);
      this.wake = null;
    }
  }

  private renewAll(): void {
    this.renewing = this.renewing.then(async () => {
      if (this.stopped && this.readers.size === 0) return;
      await this.beat().catch(() => undefined);
      for (const r of [...this.readers.values()]) {
        try {
          await this.leases.renew(r.lease);
        } catch (err) {
          if (err instanceof LeaseLostError) {
            r.halt = true;
            this.onLog(`kinesis ${this.stream}: ${err.message}; restarting from the checkpoints`);
            this.queue.fail(err);
            return;
          }
          // Storage trouble: try again at the next beat; the lease stays trusted for a while.
        }
      }
    });
  }

  private async listShards(first: boolean): Promise<void> {
    const shards = new Map<string, Shard>();
    let token: string | undefined;
    do {
      let res;
      try {
        res = await this.client.send(new ListShardsCommand(token === undefined ? { StreamName: this.stream } : { NextToken: token }));
      } catch (err) {
        if (first) throw describeKinesisSetupError(err, this.stream, this.endpoint);
        throw err;
      }
      for (const s of res.Shards ?? []) if (s.ShardId !== undefined) shards.set(s.ShardId, s);
      token = res.NextToken;
    } while (token !== undefined);
    this.shards = shards;
    if (this.initialShards === null) {
      const key = `${this.statePrefix}/start.json`;
      const body = JSON.stringify({ start: this.start.type, shards: [...shards.keys()].sort(), at: new Date().toISOString() });
      await this.storage.putIfAbsent(key, body);
      const raw = await this.storage.get(key);
      this.initialShards = new Set((JSON.parse((raw ?? body).toString()) as { shards: string[] }).shards);
    }
  }

  /** Reviews shards, leases and balance: takes free shards up to a fair share, hands one over beyond it. */
  private async sync(): Promise<void> {
    await this.listShards(false);
    for (const id of this.shards.keys()) {
      if (this.closedShards.has(id)) continue;
      if ((await this.readCheckpoint(id))?.closed) this.closedShards.add(id);
    }
    const done = (id: string | undefined) => id === undefined || !this.shards.has(id) || this.closedShards.has(id);
    const eligible = [...this.shards.values()]
      .filter((s) => !this.closedShards.has(s.ShardId!) && done(s.ParentShardId) && done(s.AdjacentParentShardId))
      .map((s) => s.ShardId!)
      .sort();
    const consumers = await this.liveConsumers();
    const target = Math.ceil(eligible.length / consumers);
    const mine = [...this.readers.values()].filter((r) => !r.releasing);
    if (mine.length < target) {
      for (const id of eligible) {
        if (this.stopped || mine.length >= target) break;
        if (this.readers.has(id)) continue;
        const state: LeaseState | null = await this.leases.state(id);
        if (ShardLeases.isLive(state)) continue;
        const lease = await this.leases.tryAcquire(id, state);
        if (lease === null) continue;
        if (state !== null && state.expiresAtMs > 0 && state.owner !== this.leases.owner) this.onLog(`kinesis ${this.stream}: took over ${id} from ${state.owner} (lease expired)`);
        mine.push(this.startReader(id, lease));
      }
    } else if (mine.length > target) {
      // One at a time: the others pick it up at their next sync.
      const r = mine.at(-1)!;
      r.releasing = true;
      r.halt = true;
      this.onLog(`kinesis ${this.stream}: handing ${r.shard} over (${mine.length} held, fair share ${target} of ${eligible.length} among ${consumers} consumers)`);
    }
  }

  private startReader(shard: string, lease: HeldLease): ShardReader {
    const r: ShardReader = {
      shard,
      lease,
      // stop() may have come while the lease was being taken: such a reader must not start reading,
      // or it polls forever and close() waits for it (seen as a test that hung at 100% CPU).
      halt: this.stopped,
      releasing: false,
      ended: false,
      reads: [],
      lastSeq: undefined,
      lastEventPos: undefined,
      committedPos: undefined,
      waiters: [],
      records: 0,
      recordsAtLastLog: 0,
      behindMs: undefined,
      files: 0,
      task: Promise.resolve(),
      writes: Promise.resolve(),
    };
    this.readers.set(shard, r);
    r.task = this.read(r).catch((err) => this.queue.fail(err));
    return r;
  }

  private queueWrite(r: ShardReader, fn: () => Promise<void>): Promise<void> {
    const next = r.writes.then(fn);
    r.writes = next.catch(() => undefined);
    return next;
  }

  /** Sleeps `ms`, less when stopped meanwhile. */
  private pause(ms: number): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    return Promise.race([new Promise<void>((r) => (t = setTimeout(r, ms))), this.halted]).finally(() => clearTimeout(t));
  }

  /** Waits until every record read from the shard is committed. */
  private committed(r: ShardReader): Promise<void> {
    const pos = r.lastEventPos;
    if (pos === undefined || (r.committedPos !== undefined && r.committedPos >= pos)) return Promise.resolve();
    return new Promise((resolve) => r.waiters.push({ pos, resolve }));
  }

  // ------------------------------------------------------------------ reading one shard

  private async iteratorFor(r: ShardReader): Promise<string | undefined> {
    const input: GetShardIteratorCommandInput = { StreamName: this.stream, ShardId: r.shard, ShardIteratorType: 'TRIM_HORIZON' };
    if (r.lastSeq !== undefined) {
      Object.assign(input, { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: r.lastSeq });
    } else {
      const cp = await this.readCheckpoint(r.shard);
      if (cp !== undefined) {
        Object.assign(input, { ShardIteratorType: `${cp.resume}_SEQUENCE_NUMBER`, StartingSequenceNumber: cp.sequenceNumber });
      } else if (this.initialShards?.has(r.shard) && this.start.type !== 'TRIM_HORIZON') {
        input.ShardIteratorType = this.start.type;
        if (this.start.type === 'AT_TIMESTAMP') input.Timestamp = this.start.at;
      }
    }
    const res = await this.call(r, () => this.client.send(new GetShardIteratorCommand(input)));
    return res?.ShardIterator;
  }

  /** Runs `fn`, backing off on throttling and transient failures; undefined when the reader halted meanwhile. */
  private async call<T>(r: ShardReader, fn: () => Promise<T>): Promise<T | undefined> {
    let delay = 250;
    for (;;) {
      if (r.halt) return undefined;
      try {
        return await fn();
      } catch (err) {
        const { name } = describeSdkError(err);
        if (name === 'ExpiredIteratorException') throw err;
        if (!isRetriableKinesisError(err)) throw new SourceError(`Kinesis ${name ?? 'error'} reading ${this.stream}/${r.shard}: ${(err as Error).message}`, { cause: err });
        if (name !== 'ProvisionedThroughputExceededException') this.onLog(`kinesis ${this.stream}/${r.shard}: ${name ?? (err as Error).message}; retrying in ${delay} ms`);
        await this.pause(delay * (0.5 + Math.random()));
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  private async read(r: ShardReader): Promise<void> {
    // Before any row of the shard: another consumer may have committed files from it.
    await this.queue.push({ shard: r.shard, fallbackReceivedAtMs: Date.now(), records: [], acquired: true });
    let iterator = await this.iteratorFor(r);
    let nextCallAt = 0;
    while (!r.halt && iterator !== undefined && !r.ended) {
      const wait = nextCallAt - Date.now();
      if (wait > 0) await this.pause(wait);
      const callAt = Date.now();
      let res;
      try {
        res = await this.call(r, () => this.client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: this.recordsPerCall })));
      } catch (err) {
        if (describeSdkError(err).name !== 'ExpiredIteratorException') throw err;
        iterator = await this.iteratorFor(r); // from the last record read, never from the start
        continue;
      }
      if (res === undefined) break;
      r.behindMs = res.MillisBehindLatest;
      const records = res.Records ?? [];
      let bytes = 0;
      if (records.length > 0) {
        const batch = this.toBatch(r, records);
        for (const rec of records) bytes += rec.Data?.byteLength ?? 0;
        await this.queue.push(batch);
      }
      iterator = res.NextShardIterator ?? undefined;
      if (iterator === undefined) r.ended = true; // a closed shard read to its end (resharding)
      nextCallAt = callAt + Math.max(records.length === 0 ? this.idlePollMs : MIN_CALL_GAP_MS, (bytes / SHARD_BYTES_PER_S) * 1000);
    }
    if (this.stopped) return; // leases are released by close(), after the final commit
    if (r.ended) {
      this.onLog(`kinesis ${this.stream}: ${r.shard} read to its end (closed by resharding)`);
    }
    // Hand over or close only what is committed: ask for a flush, then wait for the checkpoint.
    await this.queue.push({ shard: r.shard, fallbackReceivedAtMs: Date.now(), records: [], flushAfter: true });
    await Promise.race([this.committed(r), this.halted]);
    if (this.stopped) return;
    if (r.ended) {
      await this.leases.fence(r.lease);
      await this.queueWrite(r, async () => {
        const prev = await this.readCheckpoint(r.shard);
        const last = r.lastSeq ?? prev?.sequenceNumber ?? '0';
        await this.writeCheckpoint(r.shard, { position: (r.lastEventPos ?? BigInt(prev?.position ?? '0')).toString(), sequenceNumber: last, resume: 'AFTER', closed: true });
      });
      this.closedShards.add(r.shard);
    }
    this.readers.delete(r.shard);
    await this.leases.release(r.lease);
    this.wake?.();
  }

  /** Turns GetRecords records into one batch: KPL aggregates and NDJSON payloads are split into events. */
  private toBatch(r: ShardReader, records: KinesisRecord[]): RecordBatch {
    const out: SourceRecord[] = [];
    const utf8 = new TextDecoder('utf-8', { fatal: true });
    const range = this.shards.get(r.shard)?.HashKeyRange;
    let foreign = 0;
    for (const rec of records) {
      const seqText = rec.SequenceNumber!;
      const seq = BigInt(seqText);
      const arrival = rec.ApproximateArrivalTimestamp?.getTime() ?? Date.now();
      const data = rec.Data ?? new Uint8Array(0);
      let k = 0;
      const push = (text: string, extra: Partial<SourceRecord>, meta: Record<string, string>) => {
        if (k >= MAX_SUB_RECORDS) {
          if (k === MAX_SUB_RECORDS) out.push({ position: (seq << SUB_RECORD_BITS) | BigInt(MAX_SUB_RECORDS - 1), data: '', rejected: `more than ${MAX_SUB_RECORDS - 1} events in one Kinesis record; the rest of it is refused`, meta: { sequenceNumber: seqText } });
          k++;
          return;
        }
        out.push({ position: (seq << SUB_RECORD_BITS) | BigInt(k), data: text, receivedAtMs: arrival, meta, ...extra });
        k++;
      };
      const payload = (bytes: Uint8Array, sub: number | undefined) => {
        const meta: Record<string, string> = sub === undefined ? { sequenceNumber: seqText } : { sequenceNumber: seqText, subRecord: String(sub) };
        let text: string;
        try {
          text = utf8.decode(bytes);
        } catch {
          push(Buffer.from(bytes).toString('base64'), { rejected: 'payload is not UTF-8 text (raw bytes in base64)' }, meta);
          return;
        }
        // One event, a batch envelope, or NDJSON lines: each non-blank line is a record of its own.
        if (text.indexOf('\n') < 0) {
          if (text.trim().length > 0) push(text, {}, meta);
          return; // blank: counted below when the whole record held nothing
        }
        for (const line of text.split('\n')) if (line.trim().length > 0) push(line, {}, meta);
      };
      const foreignBefore = foreign;
      const agg = deaggregate(data);
      if (agg.kind === 'plain') payload(data, undefined);
      else if (agg.kind === 'aggregated') {
        agg.records.forEach((sub, i) => {
          // As the KCL: a user record hashed outside this shard was put here on a stale shard map, and the
          // KPL puts it again to its right shard; reading it here too would count it twice.
          if (range !== undefined) {
            const h = effectiveHashKey(sub.partitionKey, sub.explicitHashKey);
            if (h < BigInt(range.StartingHashKey!) || h > BigInt(range.EndingHashKey!)) {
              foreign++;
              return;
            }
          }
          payload(sub.data, i);
        });
      }
      else push(Buffer.from(data).toString('base64'), { rejected: `corrupt KPL aggregated record: ${agg.reason} (raw bytes in base64)` }, { sequenceNumber: seqText });
      if (k === 0 && foreign === foreignBefore) push(Buffer.from(data).toString('base64'), { rejected: 'Kinesis record holds no event (blank payload; raw bytes in base64)' }, { sequenceNumber: seqText });
      r.records++;
    }
    if (foreign > 0) this.onLog(`kinesis ${this.stream}/${r.shard}: skipped ${foreign} KPL user records hashed outside this shard (the KPL re-puts them to their shard)`);
    const first = records[0]!.SequenceNumber!;
    const last = records.at(-1)!.SequenceNumber!;
    r.lastSeq = last;
    if (out.length === 0) return { shard: r.shard, fallbackReceivedAtMs: Date.now(), records: out };
    r.lastEventPos = eventPosition(out.at(-1)!.position, Number((1n << SUB_POSITION_BITS) - 1n));
    r.reads.push({ start: BigInt(first) << SEQ_SHIFT, end: r.lastEventPos, firstText: first, lastText: last });
    return { shard: r.shard, fallbackReceivedAtMs: Date.now(), records: out };
  }

  private logProgress(): void {
    for (const r of [...this.readers.values()].sort((a, b) => a.shard.localeCompare(b.shard))) {
      const delta = r.records - r.recordsAtLastLog;
      r.recordsAtLastLog = r.records;
      this.onLog(
        `kinesis ${this.stream}/${r.shard}: ${r.records.toLocaleString('en-US')} records (+${delta.toLocaleString('en-US')}), ` +
          `${r.behindMs === undefined ? '?' : r.behindMs.toLocaleString('en-US')} ms behind latest, ${r.files} files committed${r.releasing ? ', handing over' : ''}`,
      );
    }
  }
}
