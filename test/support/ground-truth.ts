/**
 * The test oracle: decides validity and computes expected answers from the raw input lines with
 * code of its own (the rules restated from the issue, not the project's decoder), then lets DuckDB
 * aggregate the valid events read straight from NDJSON.
 */
import { DuckDBInstance } from '@duckdb/node-api';
import { writeFileSync } from 'node:fs';

const TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'];
const DATE_RE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

function okId(v: unknown): boolean {
  return (typeof v === 'string' && v !== '') || typeof v === 'number';
}

/** Expands a line into its events (batch members) and says which are valid. */
export function oracleEvents(line: string): Array<{ valid: boolean; event?: Record<string, unknown> }> {
  const trimmed = line.replace(/\r$/, '');
  if (trimmed.trim() === '') return [];
  let v: unknown;
  try {
    v = JSON.parse(trimmed);
  } catch {
    return [{ valid: false }];
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return [{ valid: false }];
  const o = v as Record<string, unknown>;
  const members = Array.isArray(o.batch) && o.type === undefined ? (o.batch as unknown[]) : [o];
  if (members.length === 0) return [{ valid: false }];
  return members.map((m) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) return { valid: false };
    const e = { ...(m as Record<string, unknown>) };
    if (o !== m && e.sentAt === undefined && o.sentAt !== undefined) e.sentAt = o.sentAt;
    const size = Buffer.byteLength(o === m ? trimmed : JSON.stringify(e));
    if (size > 32 * 1024) return { valid: false };
    if (!TYPES.includes(e.type as string)) return { valid: false };
    if (!okId(e.userId) && !okId(e.anonymousId)) return { valid: false };
    if (e.type === 'track' && (typeof e.event !== 'string' || e.event === '')) return { valid: false };
    if (e.type === 'group' && !okId(e.groupId)) return { valid: false };
    for (const f of ['timestamp', 'originalTimestamp', 'sentAt', 'receivedAt']) {
      const d = e[f];
      if (d === undefined || d === null) continue;
      if (typeof d !== 'string' || !DATE_RE.test(d) || Number.isNaN(Date.parse(d))) return { valid: false };
      const [y, mo, day] = d.slice(0, 10).split('-').map(Number) as [number, number, number];
      if (day > new Date(Date.UTC(y, mo, 0)).getUTCDate()) return { valid: false }; // V8 rolls Feb 30 over to March
    }
    return { valid: true, event: e };
  });
}

export interface Expected {
  invalid: number;
  valid: number;
  perType: Record<string, number>;
  /** Track counts by event name. */
  perEvent: Record<string, number>;
  /** experiment|variation → [uniqueViews, totalViews, uniqueClicks, totalClicks]. */
  experiments: Record<string, [number, number, number, number]>;
  /** day → distinct anonymous_id across all tables. */
  anonPerDay: Record<string, number>;
  /** Sum of properties.revenue over "Order Completed", in cents. */
  revenueCents: number;
}

/** Computes the expected answers for `lines` (DuckDB over the valid events as NDJSON). */
export async function expectedAnswers(lines: string[], scratch: string): Promise<Expected> {
  let invalid = 0;
  const valid: string[] = [];
  for (const line of lines) {
    for (const r of oracleEvents(line)) {
      if (!r.valid) invalid++;
      else valid.push(JSON.stringify(r.event));
    }
  }
  const file = `${scratch}/oracle-valid.ndjson`;
  writeFileSync(file, valid.join('\n') + '\n');
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const src = `read_ndjson('${file}', columns={type: 'VARCHAR', event: 'VARCHAR', anonymousId: 'VARCHAR', receivedAt: 'VARCHAR', timestamp: 'VARCHAR', properties: 'JSON'})`;
  const rows = async (sql: string) => (await c.runAndReadAll(sql)).getRowsJson() as unknown as unknown[][];
  const perType = Object.fromEntries((await rows(`SELECT type, count(*) FROM ${src} GROUP BY 1`)).map(([t, n]) => [t, Number(n)]));
  const perEvent = Object.fromEntries((await rows(`SELECT event, count(*) FROM ${src} WHERE type = 'track' GROUP BY 1`)).map(([t, n]) => [t, Number(n)]));
  const experiments: Expected['experiments'] = {};
  for (const [ex, va, uv, tv, uc, tc] of await rows(`
      SELECT properties->>'$.experimentName', properties->>'$.variationName',
             count(DISTINCT anonymousId) FILTER (WHERE event = 'Experiment Viewed'),
             count(*) FILTER (WHERE event = 'Experiment Viewed'),
             count(DISTINCT anonymousId) FILTER (WHERE event = 'Experiment Clicked'),
             count(*) FILTER (WHERE event = 'Experiment Clicked')
      FROM ${src} WHERE type = 'track' AND event IN ('Experiment Viewed', 'Experiment Clicked') GROUP BY 1, 2`)) {
    if (Number(tv) === 0) continue; // listed only when viewed (the article's LEFT JOIN from views)
    experiments[`${ex}|${va}`] = [Number(uv), Number(tv), Number(uc), Number(tc)];
  }
  const anonPerDay = Object.fromEntries(
    (await rows(`SELECT strftime(CAST(coalesce(receivedAt, timestamp) AS TIMESTAMPTZ) AT TIME ZONE 'UTC', '%Y-%m-%d') d, count(DISTINCT anonymousId) FROM ${src} GROUP BY 1`)).map(([d, n]) => [d, Number(n)]),
  );
  const [[rev]] = await rows(`SELECT coalesce(sum(round(CAST(properties->>'$.revenue' AS DOUBLE) * 100)), 0)::BIGINT FROM ${src} WHERE event = 'Order Completed'`);
  c.closeSync();
  db.closeSync();
  return { invalid, valid: valid.length, perType, perEvent, experiments, anonPerDay, revenueCents: Number(rev) };
}
