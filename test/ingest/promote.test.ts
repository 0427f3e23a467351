/**
 * Keys of properties / traits promoted to typed columns by configuration (IngestOptions.promote):
 * each value equals what the raw line holds when it is of the column's type and is NULL otherwise
 * (the expectations are computed here from the raw lines with JSON.parse, not through the
 * project's decoder or SQL); the same over live rows, over files written before the column
 * existed and after `compact merge`; a type change and bad configs are refused by name.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { listCommittedFiles } from '../../src/catalog/files.ts';
import { ConfigError, CatalogError } from '../../src/errors.ts';
import type { PromoteConfig } from '../../src/events/promote.ts';
import { Ingestor, resolveIngestOptions } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { LakeQuery, queryLive } from '../../src/query/lake-query.ts';
import { runMerge } from '../../src/compact/merge.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { LocalLog, LocalLogSource } from '../../src/source/local-log.ts';
import { oracleEvents } from '../support/ground-truth.ts';
import { tempDir } from '../support/tmp.ts';

const PROMOTE: PromoteConfig = {
  track: { revenue: 'double', quantity: 'bigint', is_trial: 'boolean', plan: { path: '$.plan.name' }, order_id: { path: '$."order id"', type: 'string' } },
  identify: { tier: { path: '$.tier', type: 'string' }, seats: 'bigint' },
};

/** Values of every JSON type, and of no type at all (undefined: the key is absent). */
const VALUES: unknown[] = [12, -3, 0, 12.5, -0.25, 1e21, 9007199254740991, '7', 'abc', '', true, false, null, undefined, { a: 1 }, [1, 'x'], 'Café ☕'];

function lines(n: number, seed: number): string[] {
  const out: string[] = [];
  const pick = (i: number, k: number) => VALUES[(i * 7 + k * 13 + seed) % VALUES.length];
  for (let i = 0; i < n; i++) {
    const day = 20 + (i % 3);
    const receivedAt = new Date(Date.UTC(2026, 10, day, (i * 37) % 24, i % 60)).toISOString();
    if (i % 5 === 4) {
      out.push(JSON.stringify({ type: 'identify', userId: `u${i % 97}`, messageId: `s${seed}-${i}`, receivedAt, traits: { tier: pick(i, 1), seats: pick(i, 2) } }));
      continue;
    }
    const properties: Record<string, unknown> = { revenue: pick(i, 1), quantity: pick(i, 2), is_trial: pick(i, 3), plan: i % 4 === 0 ? pick(i, 4) : { name: pick(i, 4) }, 'order id': pick(i, 5) };
    out.push(JSON.stringify({ type: 'track', event: i % 2 ? 'Order Completed' : 'Trial Started', anonymousId: `a${i % 101}`, messageId: `s${seed}-${i}`, receivedAt, properties }));
  }
  out.push('{"type":"track","event":"bad"'); // invalid: a dead letter, not a row
  return out;
}

/** JSON text as DuckDB's json_extract_string renders a non-string value. */
function jsonText(v: unknown): string {
  return JSON.stringify(v);
}

/** What each promoted column must hold for a value `v` found at its path (undefined: absent). */
function expectedValue(type: string, v: unknown): unknown {
  if (v === undefined || v === null) return null;
  switch (type) {
    case 'double':
      return typeof v === 'number' ? v : null;
    case 'bigint':
      // An integer in the JSON text (no fraction, no exponent) that fits 64 bits.
      return typeof v === 'number' && Number.isInteger(v) && !/[.eE]/.test(JSON.stringify(v)) ? v : null;
    case 'boolean':
      return typeof v === 'boolean' ? v : null;
    default:
      // A number's JSON text is DuckDB's rendering of it (1e+21 sent reads 1e21): compared by value.
      return typeof v === 'string' ? v : typeof v === 'number' ? new NumberText(v) : jsonText(v);
  }
}

/** A string column's value for a JSON number: any text of the same number. */
class NumberText {
  constructor(readonly value: number) {}
}

const at = (o: unknown, path: string[]): unknown => path.reduce<unknown>((x, k) => (x !== null && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>)[k] : undefined), o);

/** message_id → [column values], from the raw lines. */
function expectedRows(raw: string[]): { tracks: Map<string, unknown[]>; identifies: Map<string, unknown[]> } {
  const tracks = new Map<string, unknown[]>();
  const identifies = new Map<string, unknown[]>();
  for (const line of raw) {
    for (const { valid, event: e } of oracleEvents(line)) {
      if (!valid) continue;
      if (e!.type === 'track') {
        const p = e!.properties;
        tracks.set(e!.messageId as string, [
          expectedValue('double', at(p, ['revenue'])),
          expectedValue('bigint', at(p, ['quantity'])),
          expectedValue('boolean', at(p, ['is_trial'])),
          expectedValue('string', at(p, ['plan', 'name'])),
          expectedValue('string', at(p, ['order id'])),
        ]);
      } else if (e!.type === 'identify') {
        identifies.set(e!.messageId as string, [expectedValue('string', at(e!.traits, ['tier'])), expectedValue('bigint', at(e!.traits, ['seats']))]);
      }
    }
  }
  return { tracks, identifies };
}

const TRACK_SQL = 'SELECT message_id, revenue, quantity, is_trial, plan, order_id FROM tracks';
const IDENTIFY_SQL = 'SELECT message_id, tier, seats FROM identifies';

/** The query's rows as message_id → values (numbers from BIGINT columns as numbers). */
function byId(rows: unknown[][]): Map<string, unknown[]> {
  return new Map(rows.map(([id, ...v]) => [id as string, v.map((x) => (typeof x === 'bigint' ? Number(x) : x))]));
}

function assertRows(got: Map<string, unknown[]>, want: Map<string, unknown[]>, what: string): void {
  assert.equal(got.size, want.size, `${what}: rows`);
  let typed = 0;
  for (const [id, w] of want) {
    const g = got.get(id);
    const norm = w.map((x, i) => (x instanceof NumberText && typeof g?.[i] === 'string' && Number(g[i]) === x.value ? g[i] : x));
    assert.deepEqual(g, norm, `${what}: ${id}`);
    if (w.some((x) => x !== null)) typed++;
  }
  assert.ok(typed > want.size / 2, `${what}: most rows have a typed value (${typed} of ${want.size})`);
}

test('configured keys become typed columns equal to the raw JSON (NULL when not of their type), in files, in Parquet types and in Athena DDL', async () => {
  const dir = tempDir('promote');
  const raw = lines(3_000, 1);
  writeFileSync(`${dir}/in.ndjson`, raw.join('\n') + '\n');
  const { storage, catalog } = openLocalLake(`${dir}/lake`);
  const stats = await new Ingestor(storage, catalog, { promote: PROMOTE }).run(new FileSource([`${dir}/in.ndjson`]));
  assert.equal(stats.deadLettered, 1);
  const want = expectedRows(raw);
  const q = await LakeQuery.open(storage, catalog);
  try {
    assertRows(byId((await q.query(TRACK_SQL)).rows), want.tracks, 'tracks');
    assertRows(byId((await q.query(IDENTIFY_SQL)).rows), want.identifies, 'identifies');
  } finally {
    q.close();
  }
  // Physical types in every file, and the catalog's types (which Athena's DDL is made from).
  const conn = await (await DuckDBInstance.create(':memory:')).connect();
  for (const f of await listCommittedFiles(storage, catalog, 'tracks')) {
    const types = Object.fromEntries(
      (await conn.runAndReadAll(`SELECT name, type FROM parquet_schema('${storage.localPath(f.key)}') WHERE name IN ('revenue', 'quantity', 'is_trial', 'plan', 'order_id')`)).getRows(),
    );
    assert.deepEqual(types, { revenue: 'DOUBLE', quantity: 'INT64', is_trial: 'BOOLEAN', plan: 'BYTE_ARRAY', order_id: 'BYTE_ARRAY' }, f.key);
  }
  conn.closeSync();
  const def = await catalog.getTable('tracks');
  const col = (n: string) => def!.columns.find((c) => c.name === n);
  assert.deepEqual(
    ['revenue', 'quantity', 'is_trial', 'plan', 'order_id'].map((n) => [col(n)?.type, col(n)?.comment]),
    [
      ['double', 'properties.revenue, promoted'],
      ['bigint', 'properties.quantity, promoted'],
      ['boolean', 'properties.is_trial, promoted'],
      ['string', 'properties.plan.name, promoted'],
      ['string', 'properties."order id", promoted'],
    ],
  );
  assert.equal((await catalog.getTable('identifies'))!.columns.find((c) => c.name === 'seats')?.type, 'bigint');
});

test('promoted columns over live rows equal the same rows once committed, beside files written before the keys were promoted', async () => {
  const dir = tempDir('promote-live');
  const lake = `${dir}/lake`;
  // Committed first without the config: the catalog's tables lack the columns until the live run commits.
  const earlier = lines(600, 7);
  writeFileSync(`${dir}/earlier.ndjson`, earlier.join('\n') + '\n');
  const { storage, catalog } = openLocalLake(lake);
  await new Ingestor(storage, catalog).run(new FileSource([`${dir}/earlier.ndjson`]));
  const committedBefore = (await listCommittedFiles(storage, catalog, 'tracks')).length;
  assert.equal((await catalog.getTable('tracks'))!.columns.some((c) => c.name === 'revenue'), false);
  const raw = lines(1_200, 2);
  const log = await LocalLog.open(`${lake}/_tributary/log`);
  await log.append(raw);
  const ac = new AbortController();
  // A long time cap and big targets: the rows stay live until the run stops.
  const ingestor = new Ingestor(storage, catalog, { promote: PROMOTE, maxFileAgeMs: 3_600_000, closeAfterMs: null, signal: ac.signal, decodeWorkers: 1 });
  const running = ingestor.run(new LocalLogSource(`${lake}/_tributary/log`, { log, signal: ac.signal }));
  const want = expectedRows([...earlier, ...raw]);
  try {
    let got = new Map<string, unknown[]>();
    for (let i = 0; i < 200 && got.size < want.tracks.size; i++) {
      got = byId((await queryLive(storage, catalog, ingestor, TRACK_SQL, { builtinViews: false })).rows);
      if (got.size < want.tracks.size) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await listCommittedFiles(storage, catalog, 'tracks')).length, committedBefore, 'nothing committed by this run yet: its rows are live');
    assertRows(got, want.tracks, 'live tracks');
    assertRows(byId((await queryLive(storage, catalog, ingestor, IDENTIFY_SQL, { builtinViews: false })).rows), want.identifies, 'live identifies');
  } finally {
    ac.abort(); // also when an assertion failed: the run stops, and the test with it
    await running;
    await log.close();
  }
  const q = await LakeQuery.open(storage, catalog);
  try {
    assert.ok((await listCommittedFiles(storage, catalog, 'tracks')).length > 0, 'committed at the stop');
    assertRows(byId((await q.query(TRACK_SQL)).rows), want.tracks, 'committed tracks');
  } finally {
    q.close();
  }
});

test('a key promoted later: files written before get its values from the JSON, and compact merge writes them into the column', async () => {
  const dir = tempDir('promote-later');
  const before = lines(1_500, 3);
  const after = lines(1_500, 4);
  writeFileSync(`${dir}/before.ndjson`, before.join('\n') + '\n');
  writeFileSync(`${dir}/after.ndjson`, after.join('\n') + '\n');
  const { storage, catalog } = openLocalLake(`${dir}/lake`);
  await new Ingestor(storage, catalog).run(new FileSource([`${dir}/before.ndjson`]));
  const oldFiles = await listCommittedFiles(storage, catalog, 'tracks');
  await new Ingestor(storage, catalog, { promote: PROMOTE }).run(new FileSource([`${dir}/after.ndjson`]));
  const want = expectedRows([...before, ...after]);
  const check = async (what: string) => {
    const q = await LakeQuery.open(storage, catalog);
    try {
      assertRows(byId((await q.query(TRACK_SQL)).rows), want.tracks, what);
      assertRows(byId((await q.query(IDENTIFY_SQL)).rows), want.identifies, `${what} (identifies)`);
    } finally {
      q.close();
    }
  };
  await check('old files beside new ones');

  const conn = await (await DuckDBInstance.create(':memory:')).connect();
  const hasRevenue = async (key: string) =>
    (await conn.runAndReadAll(`SELECT count(*) FROM parquet_schema('${storage.localPath(key)}') WHERE name = 'revenue'`)).getRows()[0]![0] === 1n;
  assert.equal(await hasRevenue(oldFiles[0]!.key), false, 'the first files lack the column');

  const merged = await runMerge(storage, catalog, { graceMs: 0, olderThanMs: 0 });
  assert.ok(merged.merged > 0, 'partitions merged');
  const files = await listCommittedFiles(storage, catalog, 'tracks');
  for (const f of files) assert.equal(await hasRevenue(f.key), true, `${f.key} holds the column`);
  // Read straight from the merged files (no filling from JSON): the old rows' values are in the column.
  const direct = byId(
    (
      await conn.runAndReadAll(
        `SELECT message_id, revenue, quantity, is_trial, plan, order_id FROM read_parquet([${files.map((f) => `'${storage.localPath(f.key)}'`).join(', ')}])`,
      )
    ).getRows() as unknown[][],
  );
  conn.closeSync();
  assertRows(direct, want.tracks, 'merged files read directly');
  await check('after the merge');
});

test('a column type is never changed: a config giving an existing column another type is refused, naming both', async () => {
  const dir = tempDir('promote-type');
  writeFileSync(`${dir}/in.ndjson`, lines(200, 5).join('\n') + '\n');
  writeFileSync(`${dir}/more.ndjson`, lines(200, 6).join('\n') + '\n');
  const { storage, catalog } = openLocalLake(`${dir}/lake`);
  await new Ingestor(storage, catalog, { promote: { track: { revenue: 'bigint' } } }).run(new FileSource([`${dir}/in.ndjson`]));
  await assert.rejects(
    new Ingestor(storage, catalog, { promote: { track: { revenue: 'double' } } }).run(new FileSource([`${dir}/more.ndjson`])),
    (err: unknown) => err instanceof CatalogError && /column revenue of table tracks is bigint in the catalog; cannot write it as double/.test((err as Error).message),
  );
});

test('bad promote configs are refused with the bad value and what was expected', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ trak: { a: 'string' } }, /promote.*"trak".*an event type/],
    [{ alias: { a: 'string' } }, /promote\.alias.*neither properties nor traits/],
    [{ track: { Revenue: 'double' } }, /promote\.track\.Revenue.*lower-case column name/],
    [{ track: { event: 'string' } }, /promote\.track\.event.*a name the track table does not already have/],
    [{ track: { dt: 'string' } }, /promote\.track\.dt.*does not already have/],
    [{ track: { experiment_name: 'string' } }, /promote\.track\.experiment_name/],
    [{ track: { revenue: 'float' } }, /promote\.track\.revenue\.type.*"float".*string, bigint, double, boolean/],
    [{ track: { revenue: { path: 'revenue' } } }, /promote\.track\.revenue\.path.*"revenue".*a JSON path/],
    [{ track: { revenue: { path: "$.a'b" } } }, /promote\.track\.revenue\.path/],
    [{ track: { revenue: { type: 'double', as: 'x' } } }, /promote\.track\.revenue.*only the keys path and type/],
    [{ track: ['revenue'] }, /promote\.track.*an object/],
    [{ track: { long: { path: '$.' + 'k'.repeat(240) } } }, /promote\.track\.long\.path.*a JSON path of at most 236 characters/],
  ];
  for (const [promote, re] of bad) {
    assert.throws(() => resolveIngestOptions({ promote: promote as PromoteConfig }), (err: unknown) => err instanceof ConfigError && re.test((err as Error).message), JSON.stringify(promote));
  }
  const longest = '$.' + 'k'.repeat(234);
  assert.equal(resolveIngestOptions({ promote: { track: { long: { path: longest } } } }).promoted.track![0]!.path, longest);
  const ok = resolveIngestOptions({ promote: { track: { revenue: 'double', x: { path: '$.a."b c"[2]' } }, group: { size: 'bigint' } } });
  assert.deepEqual(ok.promoted, {
    track: [
      { name: 'revenue', from: 'properties', path: '$.revenue', type: 'double' },
      { name: 'x', from: 'properties', path: '$.a."b c"[2]', type: 'string' },
    ],
    group: [{ name: 'size', from: 'traits', path: '$.size', type: 'bigint' }],
  });
});
