import { createHash } from 'node:crypto';
import { parseIsoMs } from './dates.ts';
import { EVENT_TYPES, type EventType } from './schema.ts';

/** Segment's limit on one event. */
export const MAX_EVENT_BYTES = 32 * 1024;
/** Segment's limit on one batch request; a line longer than this is not parsed at all. */
export const MAX_BATCH_BYTES = 500 * 1024;

/** A valid event, ready to be routed and spooled. */
export interface DecodedEvent {
  type: EventType;
  /** messageId as sent, or `h-` + a hash of the raw record. */
  messageId: string;
  receivedAtMs: number;
  timestampMs: number | null;
  originalTimestampMs: number | null;
  sentAtMs: number | null;
  /** Track event name (null for other types). */
  event: string | null;
  /** The event's JSON text (the input line itself unless it came from a batch). */
  raw: string;
}

/** A record that failed validation; it goes to the dead letters with its raw text. */
export interface InvalidRecord {
  reason: string;
  raw: string;
}

export type DecodeOutcome = DecodedEvent | InvalidRecord;

/** True for an outcome that must be dead-lettered. */
export function isInvalid(o: DecodeOutcome): o is InvalidRecord {
  return (o as InvalidRecord).reason !== undefined;
}

/** How a record without receivedAt is dated. */
export interface DecodeContext {
  /**
   * receivedAt for events that carry neither receivedAt nor timestamp: the stream's arrival time,
   * or a file's modification time, so that re-reading the same input dates it the same way.
   */
  fallbackReceivedAtMs: number;
  /** When true, the record's own receivedAt is ignored and fallbackReceivedAtMs is used (the collector stamps arrival). */
  stampReceivedAt?: boolean;
}

const TYPES = new Set<string>(EVENT_TYPES);
const STRING_FIELDS = ['messageId', 'event', 'name', 'userId', 'anonymousId', 'groupId', 'previousId'] as const;
const DATE_FIELDS = ['timestamp', 'originalTimestamp', 'sentAt', 'receivedAt'] as const;

/**
 * Decodes one input record (a line, or a stream record's payload) into events: one for a plain event,
 * one per member for a Segment batch envelope `{"batch":[...]}`. Never throws on bad input.
 */
export function decodeRecord(text: string, ctx: DecodeContext): DecodeOutcome[] {
  const recordBytes = byteLengthOver(text, MAX_BATCH_BYTES);
  if (recordBytes !== null) {
    return [{ reason: `record is ${recordBytes} bytes, larger than the ${MAX_BATCH_BYTES}-byte batch limit`, raw: text }];
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return [{ reason: `malformed JSON: ${(err as Error).message}`, raw: text }];
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return [{ reason: `not a JSON object (got ${Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value})`, raw: text }];
  }
  const obj = value as Record<string, unknown>;
  if (Array.isArray(obj.batch) && obj.type === undefined) return decodeBatch(obj, text, ctx);
  const problem = unpairedSurrogate(text);
  if (problem !== null) return [{ reason: problem, raw: text }];
  return [validate(obj, text, ctx)];
}

/**
 * Why `text` (valid JSON) cannot be stored as UTF-8: a `\u` escape of an unpaired surrogate, which
 * JSON.parse accepts but no UTF-8 reader (DuckDB's, Athena's) does; null when it can.
 */
function unpairedSurrogate(text: string): string | null {
  for (let i = text.indexOf('\\'); i >= 0; i = text.indexOf('\\', i)) {
    if (text.charCodeAt(i + 1) !== 0x75) {
      i += 2; // any other escape (JSON.parse has checked them)
      continue;
    }
    const unit = parseInt(text.slice(i + 2, i + 6), 16);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 7) === 0x75 && text.charCodeAt(i + 6) === 0x5c ? parseInt(text.slice(i + 8, i + 12), 16) : -1;
      if (next >= 0xdc00 && next <= 0xdfff) {
        i += 12;
        continue;
      }
    }
    if (unit >= 0xd800 && unit <= 0xdfff) return `unpaired surrogate ${text.slice(i, i + 6)} in a string: not representable in UTF-8`;
    i += 6;
  }
  return null;
}

function decodeBatch(envelope: Record<string, unknown>, text: string, ctx: DecodeContext): DecodeOutcome[] {
  const members = envelope.batch as unknown[];
  if (members.length === 0) return [{ reason: 'batch envelope with an empty "batch" array', raw: text }];
  const out: DecodeOutcome[] = [];
  for (const m of members) {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) {
      out.push({ reason: 'batch member is not a JSON object', raw: JSON.stringify(m) ?? 'undefined' });
      continue;
    }
    const ev = m as Record<string, unknown>;
    // Batch-level fields apply to members that lack them (Segment's HTTP API does the same).
    for (const k of ['context', 'integrations', 'sentAt'] as const) {
      if (ev[k] === undefined && envelope[k] !== undefined) ev[k] = envelope[k];
    }
    const raw = JSON.stringify(ev);
    const problem = unpairedSurrogate(raw);
    out.push(problem !== null ? { reason: problem, raw } : validate(ev, raw, ctx));
  }
  return out;
}

function byteLengthOver(text: string, limit: number): number | null {
  if (text.length * 3 <= limit) return null; // cheap bound: a UTF-16 unit is at most 3 UTF-8 bytes
  const n = Buffer.byteLength(text, 'utf8');
  return n > limit ? n : null;
}

function validate(ev: Record<string, unknown>, raw: string, ctx: DecodeContext): DecodeOutcome {
  const size = byteLengthOver(raw, MAX_EVENT_BYTES);
  if (size !== null) return { reason: `event is ${size} bytes, larger than the ${MAX_EVENT_BYTES}-byte limit`, raw };
  const type = ev.type;
  if (typeof type !== 'string' || !TYPES.has(type)) {
    return { reason: `type ${JSON.stringify(type) ?? 'missing'} is not one of ${EVENT_TYPES.join(', ')}`, raw };
  }
  for (const f of STRING_FIELDS) {
    const v = ev[f];
    if (v !== undefined && v !== null && typeof v !== 'string' && typeof v !== 'number') {
      return { reason: `${f} must be a string, got ${Array.isArray(v) ? 'array' : typeof v}`, raw };
    }
  }
  if (!present(ev.userId) && !present(ev.anonymousId)) return { reason: 'neither userId nor anonymousId is set', raw };
  if (type === 'track' && (typeof ev.event !== 'string' || ev.event.length === 0)) {
    return { reason: 'track without a non-empty string "event"', raw };
  }
  if (type === 'group' && !present(ev.groupId)) return { reason: 'group without groupId', raw };
  if (type === 'alias' && !present(ev.previousId)) return { reason: 'alias without previousId', raw };
  const dates: Record<(typeof DATE_FIELDS)[number], number | null> = { timestamp: null, originalTimestamp: null, sentAt: null, receivedAt: null };
  for (const f of DATE_FIELDS) {
    const v = ev[f];
    if (v === undefined || v === null) continue;
    const ms = typeof v === 'string' ? parseIsoMs(v) : NaN;
    if (Number.isNaN(ms)) return { reason: `${f} ${JSON.stringify(v)} is not an ISO-8601 date`, raw };
    dates[f] = ms;
  }
  const receivedAtMs = ctx.stampReceivedAt ? ctx.fallbackReceivedAtMs : dates.receivedAt ?? dates.timestamp ?? ctx.fallbackReceivedAtMs;
  // Segment's rule for a missing timestamp: correct the client clock by the sentAt/originalTimestamp skew.
  let timestampMs = dates.timestamp;
  if (timestampMs === null) {
    timestampMs =
      dates.originalTimestamp !== null && dates.sentAt !== null
        ? receivedAtMs - (dates.sentAt - dates.originalTimestamp)
        : dates.originalTimestamp ?? receivedAtMs;
  }
  const mid = ev.messageId;
  const messageId = typeof mid === 'string' && mid.length > 0 ? mid : typeof mid === 'number' ? String(mid) : 'h-' + createHash('sha256').update(raw).digest('hex').slice(0, 32);
  return {
    type: type as EventType,
    messageId,
    receivedAtMs,
    timestampMs,
    originalTimestampMs: dates.originalTimestamp,
    sentAtMs: dates.sentAt,
    event: type === 'track' ? (ev.event as string) : null,
    raw,
  };
}

function present(v: unknown): boolean {
  return (typeof v === 'string' && v.length > 0) || typeof v === 'number';
}
