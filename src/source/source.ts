/** One record as read from a source: a line of a file, a Kinesis record's payload, a log entry. */
export interface SourceRecord {
  /** Position inside its shard; strictly increasing within the shard. */
  position: bigint;
  /** The record's text (UTF-8 decoded). */
  data: string;
  /** When set, the record was longer than the source accepts: `data` holds only its head, this its full size. */
  oversizeBytes?: number;
  /** When set, the source found the record unusable (e.g. a corrupt aggregate): it is dead-lettered with this reason. */
  rejected?: string;
  /** receivedAt for this record's events that carry neither receivedAt nor timestamp, instead of the batch's fallback (e.g. the Kinesis arrival time: the same on every replay). */
  receivedAtMs?: number;
  /** Source-specific locators added to the record's dead letters (e.g. Kinesis `sequenceNumber`). */
  meta?: Record<string, string>;
}

/** True for a record the source itself refused (unusable, or longer than it accepts): dead-lettered without decoding. */
export function refusedBySource(r: SourceRecord): boolean {
  return r.rejected !== undefined || r.oversizeBytes !== undefined;
}

/** Records read together from one shard. */
export interface RecordBatch {
  /** Shard id, safe as a file-name part ([A-Za-z0-9_-]). */
  shard: string;
  /** receivedAt given to events that carry neither receivedAt nor timestamp. */
  fallbackReceivedAtMs: number;
  /** When true, every event's receivedAt is set to fallbackReceivedAtMs (a collector stamping arrival). */
  stampReceivedAt?: boolean;
  records: SourceRecord[];
  /**
   * Instead of (or besides) `records`: a chunk of NDJSON bytes ending at a line end, whose lines are
   * records at positions firstPosition, firstPosition+1, ... (blank lines keep their number).
   * Sources that read NDJSON use it so decoding happens on worker threads, off the reading thread.
   */
  ndjson?: { bytes: Uint8Array; firstPosition: bigint; lines: number; startsFile: boolean };
  /**
   * The source has just taken this shard over (a lease): another process may have committed files
   * from it since this run started, so its high-water marks are recovered again before applying.
   */
  acquired?: boolean;
  /** After this batch, flush and commit every open file, then checkpoint (a shard ended or is handed over). */
  flushAfter?: boolean;
}

/**
 * The Source port: an async iterable of record batches (pull, so a slow writer slows the reader).
 * Positions let the pipeline name files deterministically and skip what is already committed.
 */
export interface Source extends AsyncIterable<RecordBatch> {
  /** Stable name of the stream, safe as a path part: `file`, `kinesis-<stream>`, `log`. */
  readonly name: string;
  /** Called once every record of `shard` at or before `position` is committed; a source may persist it. */
  checkpoint?(shard: string, position: bigint): Promise<void>;
  /** Progress in input bytes so far and in total when known (for a progress line). */
  progress?(): { bytes: number; totalBytes: number | null };
  /**
   * Called right before a file holding rows of `shards` becomes visible; throws (LeaseLostError)
   * when this process may no longer commit for one of them. Sources without ownership omit it.
   */
  fence?(shards: readonly string[]): Promise<void>;
  /** Hands back the `ndjson.bytes` of a batch once it is decoded: the source may reuse the memory for a later batch. */
  recycle?(bytes: Uint8Array): void;
}

/** Bits of an event position reserved for the index of an event inside its record (a Segment batch). */
export const SUB_POSITION_BITS = 20n;

/** The position of record `i` of a batch (its `i`-th line when the batch is NDJSON). */
export function recordPosition(batch: RecordBatch, i: number): bigint {
  return batch.ndjson !== undefined ? batch.ndjson.firstPosition + BigInt(i) : batch.records[i]!.position;
}

/** The position of the `index`-th event of the record at `recordPosition`. */
export function eventPosition(recordPosition: bigint, index: number): bigint {
  return (recordPosition << SUB_POSITION_BITS) | BigInt(index);
}
