import { badOption } from '../errors.ts';
import { MAX_COMPONENT_BYTES, escapePathValue } from './hive-path.ts';

/** A field a table can be partitioned by. */
export type PartitionField = 'dt' | 'hour' | 'event';

/** What a partition field is computed from, and its catalog type. */
export const PARTITION_FIELDS: Record<PartitionField, { column: string | null; glueType: string; duckType: string }> = {
  /** UTC day of received_at, YYYY-MM-DD. */
  dt: { column: null, glueType: 'string', duckType: 'DATE' },
  /** UTC hour of received_at, 00–23. */
  hour: { column: null, glueType: 'string', duckType: 'VARCHAR' },
  /** The track's event name (only tables that have an `event` column use it). */
  event: { column: 'event', glueType: 'string', duckType: 'VARCHAR' },
};

/** Parses `event,dt` (or an array) into a validated, duplicate-free field list. */
export function parsePartitionSpec(spec: string | readonly string[]): PartitionField[] {
  const parts = (typeof spec === 'string' ? spec.split(',') : [...spec]).map((s) => s.trim()).filter((s) => s.length > 0);
  if (parts.length === 0) badOption('partitionBy', spec, 'a comma-separated list of dt, hour, event (e.g. "dt" or "event,dt")');
  const seen = new Set<string>();
  for (const p of parts) {
    if (!Object.hasOwn(PARTITION_FIELDS, p)) badOption('partitionBy', p, 'one of dt, hour, event');
    if (seen.has(p)) badOption('partitionBy', spec, 'each field at most once');
    seen.add(p);
  }
  if (seen.has('hour') && !seen.has('dt')) badOption('partitionBy', spec, '"hour" together with "dt" (an hour alone repeats every day)');
  return parts as PartitionField[];
}

/** Values a record contributes to partitioning. */
export interface PartitionInput {
  /** received_at, epoch ms (UTC). */
  receivedAtMs: number;
  /** The event name, for tables that have one. */
  event: string | null;
}

const DAY_MS = 86_400_000;
/** Day strings by day number: on the hot path, events of a stream fall on a handful of days. */
const dayCache = new Map<number, string>();

/** YYYY-MM-DD of an epoch-ms instant, in UTC. */
function utcDay(ms: number): string {
  const day = Math.floor(ms / DAY_MS);
  let s = dayCache.get(day);
  if (s === undefined) {
    if (dayCache.size >= 4096) dayCache.clear();
    s = new Date(day * DAY_MS).toISOString().slice(0, 10);
    dayCache.set(day, s);
  }
  return s;
}

/** The ordered `[key, value]` pairs for a record under `fields`. */
export function partitionValues(fields: readonly PartitionField[], input: PartitionInput): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const f of fields) {
    switch (f) {
      case 'dt':
        out.push(['dt', utcDay(input.receivedAtMs)]);
        break;
      case 'hour':
        out.push(['hour', new Date(input.receivedAtMs).toISOString().slice(11, 13)]);
        break;
      case 'event':
        out.push(['event', input.event ?? '']);
        break;
    }
  }
  return out;
}

/**
 * The end (epoch ms, exclusive) of a partition's time window, from its dt (and hour) values; null
 * without a valid dt (a partition by event alone has no window).
 */
export function partitionWindowEnd(pairs: ReadonlyArray<readonly [string, string]>): number | null {
  const dt = pairs.find((p) => p[0] === 'dt')?.[1];
  if (dt === undefined || !/^\d{4}-\d{2}-\d{2}$/.test(dt)) return null;
  const day = Date.parse(dt + 'T00:00:00Z');
  if (!Number.isFinite(day)) return null;
  const hour = pairs.find((p) => p[0] === 'hour')?.[1];
  if (hour === undefined) return day + DAY_MS;
  return /^\d{2}$/.test(hour) && Number(hour) < 24 ? day + (Number(hour) + 1) * 3_600_000 : null;
}

/** Null when the pair fits one path component; otherwise why not. */
export function componentProblem(key: string, value: string): string | null {
  const bytes = Buffer.byteLength(`${key}=${escapePathValue(value)}`, 'utf8');
  return bytes > MAX_COMPONENT_BYTES
    ? `partition value for "${key}" is too long for a path component (${bytes} bytes escaped, limit ${MAX_COMPONENT_BYTES})`
    : null;
}
