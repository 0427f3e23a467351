import { badOption } from '../errors.ts';
import { parseDuration } from '../units.ts';

/** When a job runs next. */
export interface Schedule {
  /** The source text. */
  readonly text: string;
  /** The first run time strictly after `afterMs` (epoch ms). */
  next(afterMs: number): number;
}

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day of week', min: 0, max: 6 },
] as const;

const ALIASES: Record<string, string> = { '@hourly': '0 * * * *', '@daily': '0 0 * * *', '@midnight': '0 0 * * *', '@weekly': '0 0 * * 0', '@monthly': '0 0 1 * *' };

function parseField(text: string, f: (typeof FIELDS)[number], expr: string): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\*|\d+)(?:-(\d+))?(?:\/(\d+))?$/.exec(part);
    if (m === null) badOption(`schedule ${JSON.stringify(expr)}: ${f.name}`, part, `a number, range (a-b), list (a,b) or step (*/n) within ${f.min}–${f.max}`);
    const lo = m[1] === '*' ? f.min : Number(m[1]);
    const hi = m[2] !== undefined ? Number(m[2]) : m[1] === '*' || m[3] !== undefined ? f.max : lo;
    const step = m[3] !== undefined ? Number(m[3]) : 1;
    const max = f.name === 'day of week' ? 7 : f.max; // Sunday is 0 or 7
    if (lo < f.min || hi > max || lo > hi || step < 1) badOption(`schedule ${JSON.stringify(expr)}: ${f.name}`, part, `values within ${f.min}–${max}`);
    for (let v = lo; v <= hi; v += step) out.add(v === 7 && f.name === 'day of week' ? 0 : v);
  }
  return out;
}

/**
 * Parses a schedule: five-field cron (`min hour day-of-month month day-of-week`, UTC; `*`, lists,
 * ranges, steps; day-of-month and day-of-week OR-ed when both are restricted, as cron does),
 * `@hourly`/`@daily`/`@weekly`/`@monthly`, or `@every <duration>` (e.g. `@every 30s`).
 */
export function parseSchedule(expr: string): Schedule {
  const text = expr.trim();
  const every = /^@every\s+(.+)$/.exec(text);
  if (every !== null) {
    const ms = parseDuration('schedule @every', every[1]!);
    if (ms < 1000) badOption('schedule', expr, '@every of at least 1s');
    return { text, next: (after) => (Math.floor(after / ms) + 1) * ms };
  }
  const cron = ALIASES[text] ?? text;
  const parts = cron.split(/\s+/);
  if (parts.length !== 5) badOption('schedule', expr, 'five cron fields (minute hour day-of-month month day-of-week), @daily-style alias, or @every 10m');
  const [mi, ho, dom, mo, dow] = parts.map((p, i) => parseField(p, FIELDS[i]!, expr)) as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
  const domAny = parts[2] === '*';
  const dowAny = parts[4] === '*';
  return {
    text,
    next(after) {
      const d = new Date(Math.floor(after / 60_000) * 60_000 + 60_000);
      for (let i = 0; i < 366 * 24 * 60 * 5; i++) {
        const dayOk = domAny && dowAny ? true : domAny ? dow.has(d.getUTCDay()) : dowAny ? dom.has(d.getUTCDate()) : dom.has(d.getUTCDate()) || dow.has(d.getUTCDay());
        if (!mo.has(d.getUTCMonth() + 1) || !dayOk) {
          d.setUTCHours(0, 0, 0, 0);
          d.setUTCDate(d.getUTCDate() + 1);
          continue;
        }
        if (!ho.has(d.getUTCHours())) {
          d.setUTCMinutes(0, 0, 0);
          d.setUTCHours(d.getUTCHours() + 1);
          continue;
        }
        if (!mi.has(d.getUTCMinutes())) {
          d.setUTCMinutes(d.getUTCMinutes() + 1, 0, 0);
          continue;
        }
        return d.getTime();
      }
      badOption('schedule', expr, 'a schedule that matches some time within five years');
    },
  };
}
