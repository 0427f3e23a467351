import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FORMATS, formatResult } from '../../src/cli/format.ts';
import type { QueryResult } from '../../src/query/lake-query.ts';

const result: QueryResult = {
  columns: ['event', 'n', 'revenue', 'props'],
  types: ['VARCHAR', 'BIGINT', 'DOUBLE', 'JSON'],
  rows: [
    ['Order Completed', 12, 99.5, { a: 1 }],
    ['a, "quoted"\nline', 3, null, null],
  ],
};

const empty: QueryResult = { columns: ['x', 'y'], types: ['VARCHAR', 'INTEGER'], rows: [] };

test('FORMATS lists the four formats', () => {
  assert.deepEqual([...FORMATS].sort(), ['csv', 'json', 'ndjson', 'table']);
});

describe('json', () => {
  test('is one array of objects keyed by column, ending with a newline', () => {
    const out = formatResult(result, 'json');
    assert.ok(out.endsWith('\n'));
    assert.equal(out.split('\n').length, 2, 'one line plus the final newline');
    assert.deepEqual(JSON.parse(out), [
      { event: 'Order Completed', n: 12, revenue: 99.5, props: { a: 1 } },
      { event: 'a, "quoted"\nline', n: 3, revenue: null, props: null },
    ]);
  });

  test('no rows is an empty array', () => {
    assert.equal(formatResult(empty, 'json'), '[]\n');
  });
});

describe('ndjson', () => {
  test('is one object per line', () => {
    const out = formatResult(result, 'ndjson');
    assert.ok(out.endsWith('\n'));
    const lines = out.slice(0, -1).split('\n');
    assert.equal(lines.length, 2);
    assert.deepEqual(JSON.parse(lines[0]!), { event: 'Order Completed', n: 12, revenue: 99.5, props: { a: 1 } });
    assert.deepEqual(JSON.parse(lines[1]!), { event: 'a, "quoted"\nline', n: 3, revenue: null, props: null });
  });

  test('no rows is no output', () => {
    assert.equal(formatResult(empty, 'ndjson'), '');
  });
});

describe('csv', () => {
  test('has a header row and CRLF line ends (RFC 4180)', () => {
    const out = formatResult(result, 'csv');
    assert.equal(
      out,
      'event,n,revenue,props\r\n' +
        'Order Completed,12,99.5,"{""a"":1}"\r\n' +
        '"a, ""quoted""\nline",3,,\r\n',
    );
  });

  test('quotes fields with commas, quotes, CR or LF, and only those', () => {
    const r: QueryResult = {
      columns: ['v'],
      types: ['VARCHAR'],
      rows: [['plain'], ['with,comma'], ['with "quote"'], ['cr\rhere'], ['lf\nhere'], [' spaced '], ['semi;colon'], ["it's"]],
    };
    const lines = formatResult(r, 'csv').split('\r\n');
    assert.deepEqual(lines, [
      'v',
      'plain',
      '"with,comma"',
      '"with ""quote"""',
      '"cr\rhere"',
      '"lf\nhere"',
      ' spaced ',
      'semi;colon',
      "it's",
      '',
    ]);
  });

  test('null and undefined are empty; an empty string is empty too', () => {
    const r: QueryResult = { columns: ['a', 'b', 'c'], types: ['VARCHAR', 'VARCHAR', 'VARCHAR'], rows: [[null, undefined, '']] };
    assert.equal(formatResult(r, 'csv'), 'a,b,c\r\n,,\r\n');
  });

  test('quotes header names that need it', () => {
    const r: QueryResult = { columns: ['count(*)', 'a,b', 'say "hi"'], types: ['BIGINT', 'VARCHAR', 'VARCHAR'], rows: [[1, 'x', 'y']] };
    assert.equal(formatResult(r, 'csv'), 'count(*),"a,b","say ""hi"""\r\n1,x,y\r\n');
  });

  test('no rows is the header only', () => {
    assert.equal(formatResult(empty, 'csv'), 'x,y\r\n');
  });
});

describe('table', () => {
  const lines = (r: QueryResult) => {
    const out = formatResult(r, 'table');
    assert.ok(out.endsWith('\n'));
    return out.slice(0, -1).split('\n');
  };

  test('draws a box with the header, one line per row and a row count', () => {
    const r: QueryResult = {
      columns: ['name', 'n'],
      types: ['VARCHAR', 'BIGINT'],
      rows: [
        ['alpha', 5],
        ['be', 1234],
      ],
    };
    assert.deepEqual(lines(r), [
      '┌───────┬──────┐',
      '│ name  │ n    │',
      '├───────┼──────┤',
      '│ alpha │    5 │',
      '│ be    │ 1234 │',
      '└───────┴──────┘',
      '2 rows',
    ]);
  });

  test('right-aligns numeric types only', () => {
    const numeric = ['TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'HUGEINT', 'UBIGINT', 'FLOAT', 'DOUBLE', 'DECIMAL(18,3)'];
    for (const t of numeric) {
      const l = lines({ columns: ['value'], types: [t], rows: [['7']] });
      assert.equal(l[3], '│     7 │', `${t} is right-aligned`);
    }
    for (const t of ['VARCHAR', 'DATE', 'TIMESTAMP_MS', 'BOOLEAN', 'JSON', 'INTEGER[]', 'BIGINT[]']) {
      const l = lines({ columns: ['value'], types: [t], rows: [['7']] });
      assert.equal(l[3], '│ 7     │', `${t} is left-aligned`);
    }
  });

  test('the header of a numeric column stays left-aligned', () => {
    const l = lines({ columns: ['n'], types: ['BIGINT'], rows: [[123456]] });
    assert.equal(l[1], '│ n      │');
    assert.equal(l[3], '│ 123456 │');
  });

  test('shows NULL for null and undefined, JSON for objects', () => {
    const l = lines({ columns: ['a', 'b', 'c'], types: ['VARCHAR', 'INTEGER', 'JSON'], rows: [[null, undefined, { k: [1, 2] }]] });
    assert.equal(l[3], '│ NULL │ NULL │ {"k":[1,2]} │');
  });

  test('replaces tabs and line breaks in cells by spaces', () => {
    const l = lines({ columns: ['v'], types: ['VARCHAR'], rows: [['a\tb\r\nc']] });
    assert.equal(l.length, 6, 'the cell stays on one line');
    assert.equal(l[3], '│ a b  c │');
  });

  test('truncates cells over 80 characters with …', () => {
    const long = 'x'.repeat(81);
    const l = lines({ columns: ['v'], types: ['VARCHAR'], rows: [[long], ['x'.repeat(80)]] });
    const cell1 = l[3]!.slice(2, -2);
    assert.equal(cell1, 'x'.repeat(79) + '…');
    assert.equal(cell1.length, 80);
    assert.equal(l[4]!.slice(2, -2), 'x'.repeat(80), 'exactly 80 is kept whole');
    assert.equal(l[0], '┌' + '─'.repeat(82) + '┐');
    assert.ok(!l.some((x) => x.includes('x'.repeat(81))));
  });

  test('the row-count line says "1 row" and "0 rows"', () => {
    assert.equal(lines({ columns: ['v'], types: ['VARCHAR'], rows: [['a']] }).at(-1), '1 row');
    assert.deepEqual(lines(empty), ['┌───┬───┐', '│ x │ y │', '├───┼───┤', '└───┴───┘', '0 rows']);
  });
});
