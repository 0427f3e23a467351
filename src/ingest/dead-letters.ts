import { SUB_POSITION_BITS } from '../source/source.ts';
import type { Storage } from '../storage/storage.ts';
import type { PositionRange } from '../writer/spool.ts';
import { rangeFileName, rangeFileNameRange } from './file-names.ts';

/** One dead-lettered record as stored (one NDJSON line). */
export interface DeadLetter {
  /** Why the record was refused. */
  reason: string;
  source: string;
  shard: string;
  /** Event position in the shard (decimal string). */
  position: string;
  /** Position of the record in the shard (a file's line number), decimal string. */
  record: string;
  /** Index of the event inside its record (a member of a Segment batch), else 0. */
  index: number;
  /** When it was dead-lettered (ISO-8601). */
  at: string;
  /** The record's text as received (its head only when `rawBytes` is set). */
  raw: string;
  /** Full size of an over-long record whose head alone is in `raw`. */
  rawBytes?: number;
  /** The record's bytes, base64, when they are not valid UTF-8 (`raw` then shows them decoded, with U+FFFD for each bad sequence). */
  rawBase64?: string;
  /** Source-specific locators of the record (Kinesis: `sequenceNumber`, `subRecord`). */
  meta?: Record<string, string>;
}

/** The shard and position range a dead-letter file's name (`…/<shard>-<first>-<last>.ndjson`) holds, or null for another name. */
export function deadLetterFileRange(key: string): { shard: string; first: bigint; last: bigint } | null {
  return rangeFileNameRange(key, '.ndjson');
}

/** Dead letters buffered per shard before a flush, in characters. */
const FLUSH_CHARS = 4 * 1024 * 1024;

/**
 * Writes refused records to `_deadletter/<source>/dt=<day>/<shard>-<first>-<last>.ndjson`.
 * File names carry the positions they hold, so after a crash the high-water mark per shard is
 * recovered from the names and a replay writes no dead letter twice.
 */
export class DeadLetterSink {
  private readonly storage: Storage;
  private readonly source: string;
  private readonly hwm = new Map<string, bigint>();
  private readonly pending = new Map<string, { lines: string[]; chars: number; range: PositionRange }>();
  /** Dead letters written (or buffered) by this sink. */
  count = 0;

  constructor(storage: Storage, source: string) {
    this.storage = storage;
    this.source = source;
  }

  private get prefix(): string {
    return `_deadletter/${this.source}`;
  }

  /** Reads the per-shard high-water marks of dead letters already written. */
  async recover(): Promise<void> {
    for (const o of await this.storage.list(this.prefix, { recursive: true })) {
      const r = deadLetterFileRange(o.key);
      if (r === null) continue;
      if ((this.hwm.get(r.shard) ?? -1n) < r.last) this.hwm.set(r.shard, r.last);
    }
  }

  /** True when the record at `position` of `shard` was dead-lettered by an earlier run. */
  isDone(shard: string, position: bigint): boolean {
    const h = this.hwm.get(shard);
    return h !== undefined && position <= h;
  }

  /** Buffers a dead letter; flushes the shard's buffer when it is large. */
  async add(shard: string, position: bigint, reason: string, raw: string, extra: { rawBytes?: number; rawBase64?: string; meta?: Record<string, string> } = {}): Promise<void> {
    const dl: DeadLetter = {
      reason,
      source: this.source,
      shard,
      position: position.toString(),
      record: (position >> SUB_POSITION_BITS).toString(),
      index: Number(position & ((1n << SUB_POSITION_BITS) - 1n)),
      at: new Date().toISOString(),
      raw,
    };
    if (extra.rawBytes !== undefined) dl.rawBytes = extra.rawBytes;
    if (extra.rawBase64 !== undefined) dl.rawBase64 = extra.rawBase64;
    if (extra.meta !== undefined) dl.meta = extra.meta;
    const line = JSON.stringify(dl) + '\n';
    let p = this.pending.get(shard);
    if (p === undefined) {
      p = { lines: [], chars: 0, range: { first: position, last: position } };
      this.pending.set(shard, p);
    }
    p.lines.push(line);
    p.chars += line.length;
    p.range.last = position;
    this.count++;
    if (p.chars >= FLUSH_CHARS) await this.flushShard(shard);
  }

  /** Writes every buffered dead letter. */
  async flush(): Promise<void> {
    for (const shard of [...this.pending.keys()]) await this.flushShard(shard);
  }

  private async flushShard(shard: string): Promise<void> {
    const p = this.pending.get(shard);
    if (p === undefined) return;
    this.pending.delete(shard);
    const day = new Date().toISOString().slice(0, 10);
    await this.storage.put(`${this.prefix}/dt=${day}/${rangeFileName(shard, p.range.first, p.range.last, '.ndjson')}`, p.lines.join(''));
    this.hwm.set(shard, p.range.last);
  }
}
