import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../src/errors.ts';
import { formatBytes, parseDuration, parseSize } from '../src/units.ts';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

function throwsConfigNaming(fn: () => unknown, option: string, bad: string, expected: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
    assert.ok(err.message.includes(option), `${JSON.stringify(err.message)} names the option ${option}`);
    assert.ok(err.message.includes(JSON.stringify(bad)), `${JSON.stringify(err.message)} names the bad value ${JSON.stringify(bad)}`);
    assert.match(err.message, expected);
    return true;
  });
}

describe('parseSize', () => {
  test('units are powers of 1024, case-insensitive', () => {
    const cases: Array<[string, number]> = [
      ['512MB', 512 * MiB],
      ['1GB', GiB],
      ['1gb', GiB],
      ['2G', 2 * GiB],
      ['1GiB', GiB],
      ['64k', 64 * KiB],
      ['64K', 64 * KiB],
      ['64KB', 64 * KiB],
      ['3m', 3 * MiB],
      ['3MiB', 3 * MiB],
      ['1.5KiB', 1536],
      ['0.5MB', 512 * KiB],
      ['100b', 100],
      ['100B', 100],
      ['65536', 65536],
      ['0', 0],
      [' 512 MB ', 512 * MiB],
    ];
    for (const [s, n] of cases) assert.equal(parseSize('targetFileSize', s), n, s);
  });

  test('fractions are rounded to whole bytes', () => {
    assert.equal(parseSize('x', '1.0001KB'), 1024);
    assert.equal(parseSize('x', '0.3k'), 307);
    assert.equal(parseSize('x', '2.5'), 3);
  });

  test('a number is taken as bytes as is', () => {
    assert.equal(parseSize('x', 4096), 4096);
  });

  test('refuses bad values with a ConfigError naming the option and the value', () => {
    for (const bad of ['', 'abc', 'MB', '12XB', '1TB', '-1', '-1MB', '1.5.5MB', '1e6', '1,5MB', '5 MB B', '.5MB', '0x10']) {
      throwsConfigNaming(() => parseSize('targetFileSize', bad), 'targetFileSize', bad, /expected a size such as 512MB, 1GB or 65536/);
    }
  });
});

describe('parseDuration', () => {
  test('units ms, s, m, min, h; a bare number is milliseconds', () => {
    const cases: Array<[string, number]> = [
      ['15m', 15 * 60_000],
      ['2min', 120_000],
      ['30s', 30_000],
      ['1h', 3_600_000],
      ['1H', 3_600_000],
      ['500ms', 500],
      ['500MS', 500],
      ['250', 250],
      ['0', 0],
      ['1.5s', 1500],
      ['0.25h', 900_000],
      [' 10 s ', 10_000],
    ];
    for (const [s, n] of cases) assert.equal(parseDuration('flushInterval', s), n, s);
  });

  test('fractions of a millisecond are rounded', () => {
    assert.equal(parseDuration('x', '1.6'), 2);
    assert.equal(parseDuration('x', '0.0004s'), 0);
  });

  test('days are 24 hours (retentions: 90d)', () => {
    assert.equal(parseDuration('x', '90d'), 90 * 86_400_000);
    assert.equal(parseDuration('x', '1.5d'), 36 * 3_600_000);
  });

  test('a number is taken as milliseconds as is', () => {
    assert.equal(parseDuration('x', 1234), 1234);
  });

  test('refuses bad values with a ConfigError naming the option and the value', () => {
    for (const bad of ['', 'abc', 's', 'd', '1 hour', '2hrs', '-5s', '1.2.3s', '1e3', '10 m s', '1w']) {
      throwsConfigNaming(() => parseDuration('flushInterval', bad), 'flushInterval', bad, /expected a duration such as 15m, 30s, 1h, 90d or 500ms/);
    }
  });
});

describe('formatBytes', () => {
  test('bytes below 1 KiB are whole bytes', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1), '1 B');
    assert.equal(formatBytes(1023), '1023 B');
  });

  test('larger sizes use binary units, 2 decimals below 10 and 1 decimal above', () => {
    assert.equal(formatBytes(1024), '1.00 KiB');
    assert.equal(formatBytes(1536), '1.50 KiB');
    assert.equal(formatBytes(10 * KiB), '10.0 KiB');
    assert.equal(formatBytes(1023 * KiB), '1023.0 KiB');
    assert.equal(formatBytes(MiB), '1.00 MiB');
    assert.equal(formatBytes(5.5 * MiB), '5.50 MiB');
    assert.equal(formatBytes(512 * MiB), '512.0 MiB');
    assert.equal(formatBytes(GiB), '1.00 GiB');
    assert.equal(formatBytes(1024 * GiB), '1.00 TiB');
  });

  test('TiB is the largest unit', () => {
    assert.equal(formatBytes(3 * 1024 ** 5), '3072.0 TiB');
  });
});
