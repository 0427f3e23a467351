import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../src/errors.ts';
import {
  HIVE_DEFAULT_PARTITION,
  MAX_COMPONENT_BYTES,
  escapePathValue,
  parsePartitionPath,
  partitionPath,
  unescapePathValue,
} from '../../src/partition/hive-path.ts';
import { componentProblem, parsePartitionSpec, partitionValues } from '../../src/partition/spec.ts';

const CONTROL = Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)).join('') + '\x7f';

const HOSTILE = [
  '../../etc/passwd',
  'a/b split',
  'Café ☕',
  'SELECT * FROM t; --',
  'x'.repeat(120),
  '%41',
  '%2F',
  '%%',
  'a=b',
  '=',
  '/',
  CONTROL,
  'tab\there\nnewline\r',
  '{}[]^*?:\\"\'#',
  'nul\0byte',
  '\0',
  '.',
  '..',
  ' spaced ',
  '页面 😀 Ünïcödé',
  'trailing%',
  '%4',
  '%zz',
];

describe('escapePathValue / unescapePathValue', () => {
  test('round-trips hostile values', () => {
    for (const v of HOSTILE) {
      const e = escapePathValue(v);
      assert.equal(unescapePathValue(e), v, `round trip of ${JSON.stringify(v)} via ${JSON.stringify(e)}`);
    }
  });

  test('escaped values contain no "/", "=", NUL, control characters, "%" other than escapes', () => {
    for (const v of HOSTILE) {
      const e = escapePathValue(v);
      assert.ok(!e.includes('/'), `${JSON.stringify(e)} has no '/'`);
      assert.ok(!e.includes('='), `${JSON.stringify(e)} has no '='`);
      assert.ok(!/[\x00-\x1f\x7f]/.test(e), `${JSON.stringify(e)} has no control characters`);
      assert.ok(!/%(?![0-9A-F]{2})/.test(e), `every '%' in ${JSON.stringify(e)} starts an upper-case escape`);
    }
  });

  test('escapes Hive\'s special characters as upper-case %XX', () => {
    assert.equal(escapePathValue('../../etc/passwd'), '..%2F..%2Fetc%2Fpasswd');
    assert.equal(escapePathValue('a=b'), 'a%3Db');
    assert.equal(escapePathValue('%41'), '%2541');
    assert.equal(escapePathValue('\0'), '%00');
    assert.equal(escapePathValue('\n\t\x1f\x7f'), '%0A%09%1F%7F');
    assert.equal(escapePathValue('{}[]^*?:\\"\'#'), '%7B}%5B%5D%5E%2A%3F%3A%5C%22%27%23');
  });

  test('leaves ordinary text, spaces and non-ASCII alone', () => {
    assert.equal(escapePathValue('Order Completed'), 'Order Completed');
    assert.equal(escapePathValue('Café ☕'), 'Café ☕');
    assert.equal(escapePathValue('SELECT * FROM t; --'), 'SELECT %2A FROM t; --');
    assert.equal(escapePathValue('x'.repeat(120)), 'x'.repeat(120));
    assert.equal(escapePathValue('a-b_c.d~e+f,g'), 'a-b_c.d~e+f,g');
  });

  test('unescape accepts lower-case hex and leaves stray "%" alone', () => {
    assert.equal(unescapePathValue('a%2fb%3d'), 'a/b=');
    assert.equal(unescapePathValue('100%'), '100%');
    assert.equal(unescapePathValue('%zz'), '%zz');
    assert.equal(unescapePathValue('%2541'), '%41', 'decoded once, not twice');
  });

  test('the empty string is __HIVE_DEFAULT_PARTITION__ and back', () => {
    assert.equal(HIVE_DEFAULT_PARTITION, '__HIVE_DEFAULT_PARTITION__');
    assert.equal(escapePathValue(''), '__HIVE_DEFAULT_PARTITION__');
    assert.equal(unescapePathValue('__HIVE_DEFAULT_PARTITION__'), '');
  });
});

describe('partitionPath / parsePartitionPath', () => {
  test('builds k=v/k=v with escaped values', () => {
    assert.equal(
      partitionPath([
        ['event', 'a/b=c'],
        ['dt', '2026-03-07'],
        ['hour', '09'],
      ]),
      'event=a%2Fb%3Dc/dt=2026-03-07/hour=09',
    );
    assert.equal(partitionPath([['event', '']]), 'event=__HIVE_DEFAULT_PARTITION__');
    assert.equal(partitionPath([]), '');
  });

  test('round-trips every hostile value, in order, as one directory per key', () => {
    for (const v of [...HOSTILE, '']) {
      const pairs: Array<[string, string]> = [
        ['event', v],
        ['dt', '2026-03-07'],
      ];
      const p = partitionPath(pairs);
      assert.equal(p.split('/').length, 2, `${JSON.stringify(p)} has exactly two components`);
      assert.ok(p.endsWith('/dt=2026-03-07'));
      assert.deepEqual(parsePartitionPath(p), pairs);
    }
  });

  test('ignores leading, trailing and doubled slashes', () => {
    assert.deepEqual(parsePartitionPath('/dt=2026-03-07//hour=01/'), [
      ['dt', '2026-03-07'],
      ['hour', '01'],
    ]);
  });

  test('splits a component at its first "="', () => {
    assert.deepEqual(parsePartitionPath('k=a=b'), [['k', 'a=b']]);
  });

  test('throws on a component that is not key=value', () => {
    assert.throws(() => parsePartitionPath('dt=2026-03-07/nokey'), /not a key=value path component: "nokey"/);
    assert.throws(() => parsePartitionPath('=value'), /not a key=value path component: "=value"/);
  });
});

describe('parsePartitionSpec', () => {
  test('accepts strings and arrays', () => {
    assert.deepEqual(parsePartitionSpec('dt'), ['dt']);
    assert.deepEqual(parsePartitionSpec('event,dt'), ['event', 'dt']);
    assert.deepEqual(parsePartitionSpec(' event , dt '), ['event', 'dt']);
    assert.deepEqual(parsePartitionSpec('dt,hour'), ['dt', 'hour']);
    assert.deepEqual(parsePartitionSpec('event,dt,hour'), ['event', 'dt', 'hour']);
    assert.deepEqual(parsePartitionSpec('dt,,event,'), ['dt', 'event']);
    assert.deepEqual(parsePartitionSpec(['event', 'dt']), ['event', 'dt']);
    assert.deepEqual(parsePartitionSpec([' dt ', 'hour']), ['dt', 'hour']);
    assert.deepEqual(parsePartitionSpec(['event']), ['event']);
  });

  function throwsConfig(spec: string | string[], names: string, expected: RegExp): void {
    assert.throws(
      () => parsePartitionSpec(spec),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, `a ConfigError for ${JSON.stringify(spec)}, got ${String(err)}`);
        assert.ok(err.message.startsWith('partitionBy: '), err.message);
        assert.ok(err.message.includes(names), `${JSON.stringify(err.message)} names ${names}`);
        assert.match(err.message, expected);
        return true;
      },
    );
  }

  test('refuses an empty spec', () => {
    throwsConfig('', '""', /is not valid; expected a comma-separated list of dt, hour, event/);
    throwsConfig(' , ', '" , "', /expected a comma-separated list/);
    throwsConfig([], '[]', /expected a comma-separated list/);
  });

  test('refuses an unknown field, naming it', () => {
    throwsConfig('foo', '"foo"', /expected one of dt, hour, event/);
    throwsConfig('event,Dt', '"Dt"', /expected one of dt, hour, event/);
    throwsConfig(['dt', 'minute'], '"minute"', /expected one of dt, hour, event/);
  });

  test('refuses a repeated field', () => {
    throwsConfig('dt,dt', '"dt,dt"', /each field at most once/);
    throwsConfig(['event', 'dt', 'event'], '["event","dt","event"]', /each field at most once/);
  });

  test('refuses hour without dt', () => {
    throwsConfig('hour', '"hour"', /"hour" together with "dt"/);
    throwsConfig('event,hour', '"event,hour"', /"hour" together with "dt"/);
  });

  test(
    'refuses names inherited from Object.prototype',
    () => {
      for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
        throwsConfig(name, `"${name}"`, /expected one of dt, hour, event/);
      }
    },
  );
});

describe('partitionValues', () => {
  test('gives the UTC day and hour of receivedAt, and the event, in field order', () => {
    const input = { receivedAtMs: Date.UTC(2026, 10, 21, 23, 59, 59, 999), event: 'Order Completed' };
    assert.deepEqual(partitionValues(['event', 'dt', 'hour'], input), [
      ['event', 'Order Completed'],
      ['dt', '2026-11-21'],
      ['hour', '23'],
    ]);
    assert.deepEqual(partitionValues(['hour', 'dt'], input), [
      ['hour', '23'],
      ['dt', '2026-11-21'],
    ]);
  });

  test('day and hour roll over at UTC midnight, and hours are zero-padded', () => {
    const input = { receivedAtMs: Date.UTC(2026, 11, 31, 23, 59, 59, 999) + 1, event: null };
    assert.deepEqual(partitionValues(['dt', 'hour'], input), [
      ['dt', '2027-01-01'],
      ['hour', '00'],
    ]);
    assert.deepEqual(partitionValues(['dt', 'hour'], { receivedAtMs: Date.UTC(2024, 1, 29, 7, 30), event: null }), [
      ['dt', '2024-02-29'],
      ['hour', '07'],
    ]);
  });

  test('a null event becomes the empty string (the default partition once escaped)', () => {
    const v = partitionValues(['event'], { receivedAtMs: 0, event: null });
    assert.deepEqual(v, [['event', '']]);
    assert.equal(partitionPath(v), 'event=__HIVE_DEFAULT_PARTITION__');
  });

  test('no fields, no values', () => {
    assert.deepEqual(partitionValues([], { receivedAtMs: 0, event: 'x' }), []);
  });
});

describe('componentProblem', () => {
  test('is null for short values', () => {
    assert.equal(MAX_COMPONENT_BYTES, 255);
    assert.equal(componentProblem('event', 'Order Completed'), null);
    assert.equal(componentProblem('event', ''), null);
    assert.equal(componentProblem('dt', '2026-03-07'), null);
    assert.equal(componentProblem('event', 'x'.repeat(120)), null);
  });

  test('the limit is 255 bytes for key=escaped value', () => {
    // "event=" is 6 bytes.
    assert.equal(componentProblem('event', 'x'.repeat(249)), null);
    assert.match(componentProblem('event', 'x'.repeat(250)) ?? '', /\(256 bytes escaped, limit 255\)/);
  });

  test('counts the escaped form: 100 "/" become 300 bytes', () => {
    const p = componentProblem('event', '/'.repeat(100));
    assert.ok(p !== null);
    assert.equal(p, 'partition value for "event" is too long for a path component (306 bytes escaped, limit 255)');
    assert.equal(componentProblem('event', '/'.repeat(83)), null, '6 + 249 bytes fit');
    assert.match(componentProblem('event', '/'.repeat(84)) ?? '', /258 bytes escaped/);
  });

  test('counts UTF-8 bytes, not characters', () => {
    // '☕' is 1 character, 3 bytes: 6 + 83 × 3 = 255, 6 + 84 × 3 = 258.
    assert.equal(componentProblem('event', '☕'.repeat(83)), null);
    assert.match(componentProblem('event', '☕'.repeat(84)) ?? '', /258 bytes escaped, limit 255/);
  });
});
