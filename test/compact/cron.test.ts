import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSchedule } from '../../src/compact/cron.ts';

const at = (s: string) => Date.parse(s);
const next = (expr: string, from: string) => new Date(parseSchedule(expr).next(at(from))).toISOString();

test('cron fields: every minute, fixed times, steps, lists, ranges (UTC)', () => {
  assert.equal(next('* * * * *', '2026-11-23T10:15:30Z'), '2026-11-23T10:16:00.000Z');
  assert.equal(next('0 3 * * *', '2026-11-23T10:15:00Z'), '2026-11-24T03:00:00.000Z');
  assert.equal(next('0 3 * * *', '2026-11-23T02:59:59Z'), '2026-11-23T03:00:00.000Z');
  assert.equal(next('*/15 * * * *', '2026-11-23T10:15:00Z'), '2026-11-23T10:30:00.000Z');
  assert.equal(next('5,35 9-10 * * *', '2026-11-23T10:36:00Z'), '2026-11-24T09:05:00.000Z');
  assert.equal(next('0 0 1 * *', '2026-11-23T00:00:00Z'), '2026-12-01T00:00:00.000Z');
  assert.equal(next('0 0 29 2 *', '2026-03-01T00:00:00Z'), '2028-02-29T00:00:00.000Z');
  assert.equal(next('0 12 * * 1', '2026-11-23T12:00:00Z'), '2026-11-30T12:00:00.000Z'); // 2026-11-23 is a Monday
  assert.equal(next('0 12 * * 7', '2026-11-23T12:00:00Z'), '2026-11-29T12:00:00.000Z'); // 7 is Sunday too
  // Both day fields restricted: either matches (cron's OR).
  assert.equal(next('0 0 1 * 3', '2026-11-23T00:00:00Z'), '2026-11-25T00:00:00.000Z');
});

test('aliases and @every', () => {
  assert.equal(next('@daily', '2026-11-23T10:00:00Z'), '2026-11-24T00:00:00.000Z');
  assert.equal(next('@hourly', '2026-11-23T10:00:00Z'), '2026-11-23T11:00:00.000Z');
  assert.equal(next('@every 10m', '2026-11-23T10:03:00Z'), '2026-11-23T10:10:00.000Z');
  assert.equal(parseSchedule('@every 2s').next(1000), 2000);
});

test('bad schedules name the bad part', () => {
  assert.throws(() => parseSchedule('61 * * * *'), /minute.*"61"/);
  assert.throws(() => parseSchedule('* * *'), /five cron fields/);
  assert.throws(() => parseSchedule('0 3 * * mon'), /day of week.*"mon"/);
  assert.throws(() => parseSchedule('@every 10ms'), /at least 1s/);
  assert.throws(() => parseSchedule('0 0 31 2 *').next(0), /within five years/);
});
