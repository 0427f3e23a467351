import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseIsoMs } from '../../src/events/dates.ts';

/** Epoch ms of a UTC date-time, with a proleptic year (no 0–99 → 1900s mapping). */
function utc(y: number, mo: number, d: number, h = 0, mi = 0, s = 0, ms = 0): number {
  const t = new Date(0);
  t.setUTCFullYear(y, mo - 1, d);
  t.setUTCHours(h, mi, s, ms);
  return t.getTime();
}

describe('parseIsoMs: accepted forms', () => {
  test('Z and z mean UTC', () => {
    assert.equal(parseIsoMs('2026-03-07T10:11:12Z'), Date.UTC(2026, 2, 7, 10, 11, 12));
    assert.equal(parseIsoMs('2026-03-07t10:11:12z'), Date.UTC(2026, 2, 7, 10, 11, 12));
  });

  test('no offset is UTC', () => {
    assert.equal(parseIsoMs('2026-03-07T10:11:12'), Date.UTC(2026, 2, 7, 10, 11, 12));
    assert.equal(parseIsoMs('2026-03-07T10:11'), Date.UTC(2026, 2, 7, 10, 11));
  });

  test('date only is UTC midnight', () => {
    assert.equal(parseIsoMs('2026-03-07'), Date.UTC(2026, 2, 7));
    assert.equal(parseIsoMs('1970-01-01'), 0);
  });

  test('offsets in ±HH:MM, ±HHMM and ±HH', () => {
    assert.equal(parseIsoMs('2026-03-07T10:00:00+02:00'), Date.UTC(2026, 2, 7, 8, 0, 0));
    assert.equal(parseIsoMs('2026-03-07T10:00:00-0530'), Date.UTC(2026, 2, 7, 15, 30, 0));
    assert.equal(parseIsoMs('2026-03-07T10:00:00+02'), Date.UTC(2026, 2, 7, 8, 0, 0));
    assert.equal(parseIsoMs('2026-03-07T10:00:00-05:30'), Date.UTC(2026, 2, 7, 15, 30, 0));
    assert.equal(parseIsoMs('2026-03-07T10:00:00+0545'), Date.UTC(2026, 2, 7, 4, 15, 0));
    assert.equal(parseIsoMs('2026-03-07T10:00:00+00:00'), Date.UTC(2026, 2, 7, 10));
    assert.equal(parseIsoMs('2026-03-07T10:00:00-00:00'), Date.UTC(2026, 2, 7, 10));
  });

  test('an offset can move the instant across a day, month and year boundary', () => {
    assert.equal(parseIsoMs('2027-01-01T01:00:00+02:00'), Date.UTC(2026, 11, 31, 23));
    assert.equal(parseIsoMs('2026-12-31T23:00:00-02:00'), Date.UTC(2027, 0, 1, 1));
  });

  test('fractional seconds of 1 to 9 digits are truncated to milliseconds', () => {
    const base = Date.UTC(2026, 2, 7, 10, 11, 12);
    const cases: Array<[string, number]> = [
      ['5', 500],
      ['12', 120],
      ['123', 123],
      ['1234', 123],
      ['12345', 123],
      ['123456', 123],
      ['1239999', 123],
      ['99999999', 999],
      ['999999999', 999],
      ['000000001', 0],
      ['0', 0],
    ];
    for (const [frac, ms] of cases) {
      assert.equal(parseIsoMs(`2026-03-07T10:11:12.${frac}Z`), base + ms, `.${frac}`);
    }
    assert.equal(parseIsoMs('2026-03-07T10:11:12,25Z'), base + 250, 'comma as decimal sign');
    assert.equal(parseIsoMs('2026-03-07T10:11:12.1234567890Z'), NaN, '10 digits is too many');
  });

  test('a space may separate date and time', () => {
    assert.equal(parseIsoMs('2026-03-07 10:11:12'), Date.UTC(2026, 2, 7, 10, 11, 12));
    assert.equal(parseIsoMs('2026-03-07 10:11:12.5+01:00'), Date.UTC(2026, 2, 7, 9, 11, 12, 500));
  });

  test('boundary values of each field', () => {
    assert.equal(parseIsoMs('2026-12-31T23:59:59.999Z'), Date.UTC(2026, 11, 31, 23, 59, 59, 999));
    assert.equal(parseIsoMs('2026-01-01T00:00:00.000Z'), Date.UTC(2026, 0, 1));
    assert.equal(parseIsoMs('2026-04-30'), Date.UTC(2026, 3, 30));
    assert.equal(parseIsoMs('2026-01-31'), Date.UTC(2026, 0, 31));
  });

  test('dates before 1970 and years below 100 are not shifted', () => {
    assert.equal(parseIsoMs('1969-12-31T23:59:59Z'), -1000);
    assert.equal(parseIsoMs('0050-06-15T12:00:00Z'), utc(50, 6, 15, 12));
    assert.equal(parseIsoMs('0001-01-01T00:00:00Z'), utc(1, 1, 1));
    assert.equal(parseIsoMs('0099-12-31'), utc(99, 12, 31));
    assert.equal(parseIsoMs('9999-12-31T23:59:59Z'), Date.UTC(9999, 11, 31, 23, 59, 59));
  });
});

describe('parseIsoMs: leap years', () => {
  test('Feb 29 exists in leap years only', () => {
    assert.equal(parseIsoMs('2024-02-29T00:00:00Z'), Date.UTC(2024, 1, 29));
    assert.equal(parseIsoMs('2000-02-29'), Date.UTC(2000, 1, 29));
    assert.equal(parseIsoMs('0004-02-29'), utc(4, 2, 29));
    assert.ok(Number.isNaN(parseIsoMs('2026-02-29T00:00:00Z')));
    assert.ok(Number.isNaN(parseIsoMs('1900-02-29')));
    assert.ok(Number.isNaN(parseIsoMs('2100-02-29')));
    assert.ok(Number.isNaN(parseIsoMs('2024-02-30')));
    assert.equal(parseIsoMs('2026-02-28'), Date.UTC(2026, 1, 28));
  });

  test('Feb 29 of year 0000 (a leap year in the proleptic Gregorian calendar) is valid', () => {
    assert.equal(parseIsoMs('0000-02-29T00:00:00Z'), utc(0, 2, 29));
  });
});

describe('parseIsoMs: refusals give NaN', () => {
  const nan = (s: string) => assert.ok(Number.isNaN(parseIsoMs(s)), `${JSON.stringify(s)} should be NaN, got ${parseIsoMs(s)}`);

  test('invalid month, day, hour, minute, second', () => {
    nan('2026-00-10');
    nan('2026-13-01');
    nan('2026-01-00');
    nan('2026-01-32');
    nan('2026-04-31');
    nan('2026-06-31T00:00:00Z');
    nan('2026-03-07T24:00:00Z');
    nan('2026-03-07T23:60:00Z');
    nan('2026-03-07T23:59:60Z');
    nan('2026-03-07T99:00:00Z');
  });

  test('invalid offsets', () => {
    nan('2026-03-07T10:00:00+24:00');
    nan('2026-03-07T10:00:00+02:60');
    nan('2026-03-07T10:00:00+2');
    nan('2026-03-07T10:00:00+02:0');
    nan('2026-03-07T10:00:00+02:00:00');
    nan('2026-03-07T10:00:00 UTC');
    nan('2026-03-07T10:00:00ZZ');
  });

  test('garbage and formats Date.parse would accept', () => {
    for (const s of [
      '',
      ' ',
      'yesterday',
      '1',
      '12345',
      'March 7',
      'March 7, 2026',
      'Sat, 07 Mar 2026 10:00:00 GMT',
      '2026',
      '2026-03',
      '2026-3-7',
      '26-03-07',
      '2026/03/07',
      '20260307',
      '20260307T101112Z',
      '2026-03-07T',
      '2026-03-07T10',
      '2026-03-07T10:1',
      '2026-03-07T10:11:1',
      '2026-03-07T10:11:12.',
      '2026-03-07X10:11:12',
      ' 2026-03-07',
      '2026-03-07T10:11:12Z trailing',
      '+002026-03-07T00:00:00Z',
      '-2026-03-07',
      '２０２６-03-07',
      'NaN',
      'null',
    ]) {
      nan(s);
    }
  });
});
