const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * Parses an ISO-8601 date or date-time (the Segment spec's format) to epoch milliseconds, or NaN.
 * Strict on purpose: `Date.parse` accepts strings such as "1" or "March 7" that no other engine
 * (DuckDB, Athena) reads the same way. A time without an offset is UTC.
 */
export function parseIsoMs(s: string): number {
  const m = ISO.exec(s);
  if (m === null) return NaN;
  const y = +m[1]!, mo = +m[2]!, d = +m[3]!;
  const h = m[4] === undefined ? 0 : +m[4], mi = m[5] === undefined ? 0 : +m[5], sec = m[6] === undefined ? 0 : +m[6];
  const ms = m[7] === undefined ? 0 : Math.floor(+(m[7] + '00').slice(0, 3));
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return NaN;
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (d > daysInMonth) return NaN;
  let t = Date.UTC(y, mo - 1, d, h, mi, sec, ms);
  if (y < 100) t = new Date(t).setUTCFullYear(y); // Date.UTC maps years 0–99 to 1900–1999
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
