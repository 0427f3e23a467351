import { isUtf8 } from 'node:buffer';
import { decodeRecord, isInvalid, type DecodeContext, type DecodedEvent } from '../events/decode.ts';
import type { EventType } from '../events/schema.ts';
import { partitionKey } from '../catalog/catalog.ts';
import { componentProblem, partitionValues, type PartitionField } from '../partition/spec.ts';
import { BufferPool } from '../buffer-pool.ts';

/** Spare output buffers an encoder keeps. */
const MAX_SPARE_BUFFERS = 8;
/** Smallest output buffer made: a batch of NDJSON is ~1 MiB, so one buffer size serves most batches. */
const MIN_OUTPUT_BYTES = 2 * 1024 * 1024;

/** What the encoder needs to know about the lake layout (plain data: it crosses to worker threads). */
export interface EncoderConfig {
  /** Table per event type. */
  tables: Record<EventType, string>;
  /** Partition fields per event type (already filtered to the fields the table has). */
  partitionBy: Record<EventType, PartitionField[]>;
}

/** Input to encode: records as strings, or a chunk of NDJSON bytes ending at a line end. */
export type EncoderInput =
  | { kind: 'records'; texts: Array<string | null>; ctx: DecodeContext; /** Per record, a fallback receivedAt replacing ctx's (e.g. Kinesis arrival times). */ fallbacks?: number[] }
  | { kind: 'ndjson'; bytes: Uint8Array; ctx: DecodeContext; firstLineOfFile: boolean };

/** The rows of one (table, partition) from one input, encoded as spool lines. */
export interface EncodedGroup {
  type: EventType;
  table: string;
  /** Ordered partition key/value pairs. */
  pairs: Array<[string, string]>;
  /** partitionKey(values). */
  partKey: string;
  /** UTF-8 spool lines (see writer/spool.ts). */
  bytes: Uint8Array;
  /** Per row: index of its record in the input (line index for NDJSON). */
  record: Uint32Array;
  /** Per row: index of the event inside its record (batch member). */
  sub: Uint32Array;
  /** Per row: start offset in `bytes`; one extra entry holds the total length. */
  offsets: Uint32Array;
  /** Per row: receivedAt in ms (a sort key of the file, after `event`). */
  receivedAt: Float64Array;
  /** The distinct track event names of the rows (empty for other types). */
  events: string[];
  /** Per row: index of its event in `events` (0 when `events` is empty). */
  eventOf: Uint32Array;
}

/** A record or event refused by validation. */
export interface EncodedInvalid {
  record: number;
  sub: number;
  reason: string;
  raw: string;
  /** The record's bytes, base64, when they are not valid UTF-8. */
  rawBase64?: string;
}

/** The result of encoding one input. */
export interface EncodedBatch {
  /** Groups; their arrays are views of `buffer`. */
  groups: EncodedGroup[];
  /** The one buffer the groups' arrays view (hand it back with Encoder.recycle once they are used). */
  buffer: ArrayBuffer | null;
  invalid: EncodedInvalid[];
  /** Events seen (valid + invalid). */
  events: number;
  /** Records (lines, including blank ones for NDJSON) consumed. */
  records: number;
  /** An NDJSON input's bytes, handed back after decoding (DecodePool), for the source to reuse. */
  input?: Uint8Array;
}

/**
 * Decodes and validates records, routes each event to its (table, partition), and encodes the spool
 * lines: the CPU-heavy half of ingest, written as a pure function so it can run in worker threads.
 */
export class Encoder {
  /** Output buffers handed back for reuse. */
  private readonly spare = new BufferPool(MAX_SPARE_BUFFERS, MIN_OUTPUT_BYTES);

  constructor(private readonly config: EncoderConfig) {}

  /**
   * Takes back output buffers whose groups have been consumed. Reusing them, rather than making a new
   * buffer per batch, keeps memory warm and spares the receiving thread external-memory GCs.
   */
  recycle(buffers: ArrayBuffer[]): void {
    for (const b of buffers) this.spare.put(b); // a detached buffer (length 0) is ignored
  }

  encode(input: EncoderInput): EncodedBatch {
    // A group's lines: the computed prefix as a string, and the raw event either as a string (batch
    // members) or as the byte range of the input line it came from (copied without re-encoding).
    const groups = new Map<string, Group>();
    const invalid: EncodedInvalid[] = [];
    let events = 0;
    let lineBytes: Buffer | null = null;
    let lineStart = 0;
    let lineEnd = 0;
    const handle = (text: string, record: number, ctx: DecodeContext) => {
      const outcomes = decodeRecord(text, ctx);
      for (let i = 0; i < outcomes.length; i++) {
        const o = outcomes[i]!;
        events++;
        if (isInvalid(o)) {
          invalid.push({ record, sub: i, reason: o.reason, raw: o.raw });
          continue;
        }
        const table = this.config.tables[o.type];
        const pairs = partitionValues(this.config.partitionBy[o.type], o);
        let key = table;
        for (const p of pairs) key += '\u0000' + p[1];
        let g = groups.get(key);
        if (g === undefined) {
          const problem = pairs.map(([k, v]) => componentProblem(k, v)).find((p) => p !== null);
          if (problem) {
            invalid.push({ record, sub: i, reason: problem, raw: o.raw });
            continue;
          }
          g = { type: o.type, table, pairs, partKey: partitionKey(pairs.map((p) => p[1])), prefixes: [], raws: [], rawStart: [], rawEnd: [], record: [], sub: [], receivedAt: [], events: new Map(), eventOf: [], bound: 0 };
          groups.set(key, g);
        }
        const prefix = spoolPrefix(o);
        g.prefixes.push(prefix);
        if (lineBytes !== null && o.raw === text) {
          g.raws.push(null);
          g.rawStart.push(lineStart);
          g.rawEnd.push(lineEnd);
          g.bound += 3 * prefix.length + (lineEnd - lineStart) + 2;
        } else {
          g.raws.push(o.raw);
          g.rawStart.push(0);
          g.rawEnd.push(0);
          g.bound += 3 * (prefix.length + o.raw.length) + 2;
        }
        g.record.push(record);
        g.sub.push(i);
        g.receivedAt.push(o.receivedAtMs);
        if (o.event !== null) {
          let ev = g.events.get(o.event);
          if (ev === undefined) g.events.set(o.event, (ev = g.events.size));
          g.eventOf.push(ev);
        } else g.eventOf.push(0);
      }
    };
    let records = 0;
    if (input.kind === 'records') {
      for (let r = 0; r < input.texts.length; r++) {
        const t = input.texts[r];
        if (t === null || t === undefined) continue; // a record the source already refused
        const fb = input.fallbacks?.[r];
        handle(t, r, fb === undefined ? input.ctx : { ...input.ctx, fallbackReceivedAtMs: fb });
      }
      records = input.texts.length;
    } else {
      const bytes = Buffer.from(input.bytes.buffer, input.bytes.byteOffset, input.bytes.byteLength);
      lineBytes = bytes;
      // JSON text is UTF-8 (RFC 8259), and the writer reads it as such: one check of the whole chunk, then per line only if it fails.
      const utf8 = isUtf8(bytes);
      let start = 0;
      let line = 0;
      while (start < bytes.length) {
        let nl = bytes.indexOf(10, start);
        if (nl < 0) nl = bytes.length;
        let end = nl;
        if (end > start && bytes[end - 1] === 13) end--;
        if (line === 0 && input.firstLineOfFile && bytes[start] === 0xef && bytes[start + 1] === 0xbb && bytes[start + 2] === 0xbf) start += 3;
        if (end > start && !utf8 && !isUtf8(bytes.subarray(start, end))) {
          events++;
          invalid.push({ record: line, sub: 0, reason: 'not valid UTF-8 (JSON text must be UTF-8)', raw: bytes.toString('utf8', start, end), rawBase64: bytes.toString('base64', start, end) });
        } else if (end > start) {
          const s = bytes.toString('utf8', start, end);
          lineStart = start;
          lineEnd = end;
          if (!(s.length < 64 && s.trim().length === 0)) handle(s, line, input.ctx);
        }
        line++;
        start = nl + 1;
      }
      records = line;
    }
    // All groups go into one buffer: per-row arrays first (receivedAt first, for its 8-byte
    // alignment), then the spool lines, written in place (`bound` is a safe upper bound of their size).
    let rowsTotal = 0;
    let bound = 0;
    for (const g of groups.values()) {
      rowsTotal += g.prefixes.length;
      bound += g.bound;
    }
    const metaBytes = 8 * rowsTotal + 4 * (4 * rowsTotal + groups.size);
    const buffer = groups.size === 0 ? null : this.spare.take(metaBytes + bound);
    const out: EncodedGroup[] = [];
    if (buffer === null) return { groups: out, buffer, invalid, events, records };
    const bytesView = Buffer.from(buffer, metaBytes);
    let f64At = 0; // in 8-byte units
    let u32At = 2 * rowsTotal; // in 4-byte units
    let off = 0;
    for (const g of groups.values()) {
      const n = g.prefixes.length;
      const receivedAt = new Float64Array(buffer, 8 * f64At, n);
      f64At += n;
      const u32 = (len: number) => {
        const a = new Uint32Array(buffer, 4 * u32At, len);
        u32At += len;
        return a;
      };
      const record = u32(n);
      const sub = u32(n);
      const eventOf = u32(n);
      const offsets = u32(n + 1);
      const start = off;
      offsets[0] = 0; // a reused buffer holds old values
      for (let i = 0; i < n; i++) {
        off += bytesView.write(g.prefixes[i]!, off);
        const raw = g.raws[i];
        if (raw === null) off += lineBytes!.copy(bytesView, off, g.rawStart[i]!, g.rawEnd[i]!);
        else off += bytesView.write(raw!, off);
        bytesView[off++] = 0x7d; // }
        bytesView[off++] = 0x0a; // newline
        offsets[i + 1] = off - start;
        record[i] = g.record[i]!;
        sub[i] = g.sub[i]!;
        receivedAt[i] = g.receivedAt[i]!;
        eventOf[i] = g.eventOf[i]!;
      }
      out.push({
        type: g.type,
        table: g.table,
        pairs: g.pairs,
        partKey: g.partKey,
        bytes: new Uint8Array(buffer, metaBytes + start, off - start),
        record,
        sub,
        offsets,
        receivedAt,
        events: [...g.events.keys()],
        eventOf,
      });
    }
    return { groups: out, buffer, invalid, events, records };
  }
}

/** The start of an event's spool line: the computed fields; the raw event and `}\n` follow. */
export function spoolPrefix(ev: DecodedEvent): string {
  return (
    '{"m":' + JSON.stringify(ev.messageId) +
    ',"r":' + ev.receivedAtMs +
    ',"t":' + (ev.timestampMs ?? 'null') +
    ',"o":' + (ev.originalTimestampMs ?? 'null') +
    ',"s":' + (ev.sentAtMs ?? 'null') +
    ',"e":'
  );
}

/**
 * The message id of the spool line starting at `start` of `bytes`, as the JSON string literal
 * spoolPrefix wrote (`{"m":"…","r":…`: inside a JSON string every `"` is escaped, so the first
 * `,"r":` ends it).
 */
export function spoolMessageIdJson(bytes: Buffer, start: number): string {
  return bytes.toString('utf8', start + 5, bytes.indexOf(',"r":', start));
}

interface Group {
  type: EventType;
  table: string;
  pairs: Array<[string, string]>;
  partKey: string;
  prefixes: string[];
  /** Raw event text, or null when it is the input line's bytes rawStart..rawEnd. */
  raws: Array<string | null>;
  rawStart: number[];
  rawEnd: number[];
  record: number[];
  sub: number[];
  receivedAt: number[];
  /** Event name → index, in order of first appearance. */
  events: Map<string, number>;
  eventOf: number[];
  /** Upper bound of the encoded lines' size in bytes (3 per UTF-16 unit of the strings). */
  bound: number;
}
