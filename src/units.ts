import { badOption } from './errors.ts';

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };
const TIME_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `512MB`, `1GiB`, `64k` or a plain byte count. KB/MB/GB are powers of 1024, as in most data tools. */
export function parseSize(name: string, v: string | number): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) badOption(name, v, 'a size such as 512MB, 1GB or 65536');
    return v;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  const unit = m?.[2]?.toLowerCase();
  if (m === null || unit === undefined || !(unit in SIZE_UNITS)) badOption(name, v, 'a size such as 512MB, 1GB or 65536');
  return Math.round(Number(m[1]) * SIZE_UNITS[unit]!);
}

/** Parses `15m`, `30s`, `1h`, `90d` (days of 24 h), `500ms` or a plain millisecond count. */
export function parseDuration(name: string, v: string | number): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) badOption(name, v, 'a duration such as 15m, 30s, 1h, 90d or 500ms');
    return v;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  const unit = m?.[2]?.toLowerCase() || 'ms';
  if (m === null || !(unit in TIME_UNITS)) badOption(name, v, 'a duration such as 15m, 30s, 1h, 90d or 500ms');
  return Math.round(Number(m[1]) * TIME_UNITS[unit]!);
}

/** A duration as parseDuration, or null for "off" (the feature it sets is disabled). */
export function parseDurationOrOff(name: string, v: string | number | null): number | null {
  if (v === null || (typeof v === 'string' && v.trim().toLowerCase() === 'off')) return null;
  return parseDuration(name, v);
}

/** 1536 → "1.50 KiB", 1048576 → "1.00 MiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}
