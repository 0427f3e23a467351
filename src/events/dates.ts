const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * Parses an ISO-8601 date or date-time (the Segment spec's format) to epoch milliseconds, or NaN.
 * Strict on purpose: `Date.parse` accepts strings such as "1" or "March 7" that no other engine
 * (DuckDB, Athena) reads the same way. A time without an offset is UTC.
 */
export function parseIsoMs(s: string): number {
  const fast = parseCanonical(s);
  if (fast !== null) return fast;
  const m = ISO.exec(s);
  if (m === null) return NaN;
  const y = +m[1]!, mo = +m[2]!, d = +m[3]!;
  const h = m[4] === undefined ? 0 : +m[4], mi = m[5] === undefined ? 0 : +m[5], sec = m[6] === undefined ? 0 : +m[6];
  const ms = m[7] === undefined ? 0 : Math.floor(+(m[7] + '00').slice(0, 3));
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return NaN;
  if (d > daysInMonth(y, mo)) return NaN;
  // Date.UTC maps years 0–99 to 1900–1999; setUTCFullYear does not.
  let t = y >= 100 ? Date.UTC(y, mo - 1, d, h, mi, sec, ms) : new Date(Date.UTC(2000, 0, 1, h, mi, sec, ms)).setUTCFullYear(y, mo - 1, d);
  const tz = m[8];
  if (tz !== undefined && tz !== 'Z' && tz !== 'z') {
    const sign = tz[0] === '-' ? -1 : 1;
    const digits = tz.slice(1).replace(':', '');
    const oh = +digits.slice(0, 2), om = digits.length > 2 ? +digits.slice(2, 4) : 0;
    if (oh > 23 || om > 59) return NaN;
    t -= sign * (oh * 60 + om) * 60_000;
  }
  return t;
}

function d2(s: string, i: number): number {
  const a = s.charCodeAt(i) - 48, b = s.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * The hot path: `YYYY-MM-DDTHH:MM:SSZ` or `YYYY-MM-DDTHH:MM:SS.sssZ` (what JavaScript's
 * toISOString and every Segment library send), parsed without a regex. Null for anything else.
 */
function parseCanonical(s: string): number | null {
  const n = s.length;
  if ((n !== 24 && n !== 20) || s.charCodeAt(n - 1) !== 90 /* Z */) return null;
  if (s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== 84 || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return null;
  const y1 = d2(s, 0), y2 = d2(s, 2), mo = d2(s, 5), d = d2(s, 8), h = d2(s, 11), mi = d2(s, 14), sec = d2(s, 17);
  if (y1 < 0 || y2 < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59) return null;
  let ms = 0;
  if (n === 24) {
    if (s.charCodeAt(19) !== 46) return null;
    const a = d2(s, 20), c = s.charCodeAt(22) - 48;
    if (a < 0 || c < 0 || c > 9) return null;
    ms = a * 10 + c;
  }
  const y = y1 * 100 + y2;
  if (y < 100) return null; // leave Date.UTC's two-digit-year quirk to the general path
  if (d > daysInMonth(y, mo)) return NaN;
  return Date.UTC(y, mo - 1, d, h, mi, sec, ms);
}

function daysInMonth(y: number, mo: number): number {
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  return mo === 2 && leap ? 29 : DAYS[mo - 1]!;
}
