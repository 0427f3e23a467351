/**
 * experiment_results against a ground truth computed here in plain TypeScript (a Set of ids per
 * experiment and variation), over committed files, over live rows, and over both at once (a viewer
 * in both counted once): rows without anonymous_id (in totals, not in uniques), a variation viewed
 * but never clicked, one clicked but never viewed (not listed), missing, null and non-string keys,
 * more than 64 (variation, event) pairs, and a lake without experiment events. The view's answers
 * also equal the plain count(DISTINCT) formulation, run by the same query layer, types included.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { LakeQuery, queryLive, type QueryResult } from '../../src/query/lake-query.ts';
import { rng } from '../../src/sample/generate.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { LocalLog, LocalLogSource } from '../../src/source/local-log.ts';
import { tempDir } from '../support/tmp.ts';

/** The view as it was first written: one hash aggregate with DISTINCT, the reference. */
const REFERENCE = `
  SELECT experiment_name, variation_name,
    count(DISTINCT anonymous_id) FILTER (WHERE event = 'Experiment Viewed') AS unique_views,
    count(*) FILTER (WHERE event = 'Experiment Viewed') AS total_views,
    count(DISTINCT anonymous_id) FILTER (WHERE event = 'Experiment Clicked') AS unique_clicks,
    count(*) FILTER (WHERE event = 'Experiment Clicked') AS total_clicks
  FROM tracks
  WHERE event IN ('Experiment Viewed', 'Experiment Clicked')
  GROUP BY experiment_name, variation_name
  HAVING count(*) FILTER (WHERE event = 'Experiment Viewed') > 0
  ORDER BY experiment_name, variation_name`;

type Raw = Record<string, unknown>;

/** Experiment events (and a few others) covering the edges named above. */
function events(count: number, seed: number, idPrefix: string): Raw[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const experiments: Array<{ name: unknown; variations: unknown[] }> = [
    { name: 'Homepage Hero', variations: ['Control', 'Big Button', 'Video'] },
    // 40 variations: with the others, more than 64 (variation, event) codes.
    { name: 'Wide Experiment With A Long Name', variations: Array.from({ length: 40 }, (_, i) => `variation ${String(i).padStart(2, '0')}`) },
    { name: 7, variations: ['A', 'B'] }, // a non-string name: its JSON text
    { name: undefined, variations: ['Orphan'] }, // no experimentName
    { name: 'No Variation Key', variations: [undefined, null] },
    { name: null, variations: ['Null Name'] },
  ];
  const out: Raw[] = [];
  for (let i = 0; i < count; i++) {
    const day = 20 + Math.floor(r() * 3);
    const base: Raw = { type: 'track', messageId: `${idPrefix}-${i}`, receivedAt: new Date(Date.UTC(2026, 10, day, Math.floor(r() * 24))).toISOString() };
    // About one in ten without anonymousId (a userId instead): anonymous_id is NULL.
    if (r() < 0.1) base.userId = `user-${Math.floor(r() * 50)}`;
    else base.anonymousId = `anon-${Math.floor(r() * 400)}`;
    const k = r();
    if (k < 0.05) {
      out.push({ ...base, event: 'Order Completed', properties: { revenue: 1 } });
      continue;
    }
    if (k < 0.1) {
      out.push({ ...base, event: 'Experiment Viewed', properties: { experimentName: 'Checkout', variationName: 'Never Clicked' } });
      continue;
    }
    if (k < 0.13) {
      out.push({ ...base, event: 'Experiment Clicked', properties: { experimentName: 'Checkout', variationName: 'Only Clicked' } });
      continue;
    }
    const ex = pick(experiments);
    const props: Raw = {};
    if (ex.name !== undefined) props.experimentName = ex.name;
    const v = pick(ex.variations);
    if (v !== undefined) props.variationName = v;
    out.push({ ...base, event: r() < 0.7 ? 'Experiment Viewed' : 'Experiment Clicked', properties: props });
  }
  return out;
}

/** json_extract_string: a string as is, another value as its JSON text, null or missing as NULL. */
const jsonString = (v: unknown): string | null => (v === undefined || v === null ? null : typeof v === 'string' ? v : JSON.stringify(v));

/** experiment|variation → [unique views, total views, unique clicks, total clicks], viewed ones only. */
function truth(evs: Raw[]): Record<string, number[]> {
  const acc = new Map<string, { uv: Set<string>; tv: number; uc: Set<string>; tc: number }>();
  for (const e of evs) {
    if (e.event !== 'Experiment Viewed' && e.event !== 'Experiment Clicked') continue;
    const p = e.properties as Raw;
    const key = `${jsonString(p.experimentName)}|${jsonString(p.variationName)}`;
    const a = acc.get(key) ?? { uv: new Set(), tv: 0, uc: new Set(), tc: 0 };
    acc.set(key, a);
    const id = e.anonymousId as string | undefined;
    if (e.event === 'Experiment Viewed') {
      a.tv++;
      if (id !== undefined) a.uv.add(id);
    } else {
      a.tc++;
      if (id !== undefined) a.uc.add(id);
    }
  }
  return Object.fromEntries([...acc].filter(([, a]) => a.tv > 0).map(([k, a]) => [k, [a.uv.size, a.tv, a.uc.size, a.tc]]));
}

function byKey(r: QueryResult): Record<string, number[]> {
  assert.deepEqual(r.columns, ['experiment_name', 'variation_name', 'unique_views', 'total_views', 'unique_clicks', 'total_clicks']);
  return Object.fromEntries(r.rows.map((row) => [`${row[0]}|${row[1]}`, row.slice(2) as number[]]));
}

/** The view's answer equals the truth and the reference formulation (rows, order and types). */
async function check(run: (sql: string) => Promise<QueryResult>, expected: Record<string, number[]>, label: string): Promise<void> {
  const got = await run('SELECT * FROM experiment_results');
  assert.deepEqual(byKey(got), expected, `${label}: the ground truth`);
  const ref = await run(REFERENCE);
  assert.deepEqual(got, ref, `${label}: the count(DISTINCT) formulation`);
}

test('experiment_results equals the ground truth over committed files, live rows, and both', async () => {
  const dir = tempDir('expres');
  const committed = events(6_000, 5, 'c');
  const live = events(3_000, 6, 'l');
  const all = [...committed, ...live];
  const expected = truth(all);
  // The edges are present in the data, not only in the generator.
  assert.ok(Object.keys(expected).length > 48, `${Object.keys(expected).length} variations`);
  assert.deepEqual(expected['Checkout|Never Clicked']!.slice(2), [0, 0]);
  assert.equal(expected['Checkout|Only Clicked'], undefined);
  for (const k of ['7|A', 'null|Orphan', 'No Variation Key|null', 'null|Null Name']) assert.ok(expected[k], k);
  const anyNull = all.some((e) => e.anonymousId === undefined && String(e.event).startsWith('Experiment'));
  assert.ok(anyNull, 'experiment events without anonymousId');

  writeFileSync(`${dir}/committed.ndjson`, committed.map((e) => JSON.stringify(e)).join('\n') + '\n');
  const { storage, catalog } = openLocalLake(`${dir}/lake`);
  await new Ingestor(storage, catalog).run(new FileSource([`${dir}/committed.ndjson`]));
  const q = await LakeQuery.open(storage, catalog);
  try {
    await check((sql) => q.query(sql), truth(committed), 'committed');
  } finally {
    q.close();
  }

  // The rest held live by a running ingestor (15-minute time cap: nothing is committed meanwhile).
  const log = await LocalLog.open(`${dir}/log`);
  const ac = new AbortController();
  const ingestor = new Ingestor(storage, catalog, { signal: ac.signal, decodeWorkers: 1 });
  const running = ingestor.run(new LocalLogSource(`${dir}/log`, { log, signal: ac.signal }));
  await log.append(live.map((e) => JSON.stringify(e)));
  const liveRows = async () => {
    let n = 0;
    await ingestor.snapshot(async (s) => {
      n = s.spools.reduce((a, sp) => a + sp.rows, 0);
    });
    return n;
  };
  for (let i = 0; i < 600 && (await liveRows()) < live.length; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(await liveRows(), live.length);
  await check((sql) => queryLive(storage, catalog, ingestor, sql), expected, 'committed ∪ live');
  const empty = openLocalLake(`${dir}/empty`);
  await check((sql) => queryLive(empty.storage, empty.catalog, ingestor, sql), truth(live), 'live only');
  ac.abort();
  await running;
  await log.close();
});

test('experiment_results and experiment_significance over a lake without experiment events: no rows', async () => {
  const dir = tempDir('expres-none');
  const evs = events(500, 9, 'o').filter((e) => e.event === 'Order Completed');
  assert.ok(evs.length > 0);
  writeFileSync(`${dir}/in.ndjson`, evs.map((e) => JSON.stringify(e)).join('\n') + '\n');
  const { storage, catalog } = openLocalLake(`${dir}/lake`);
  await new Ingestor(storage, catalog).run(new FileSource([`${dir}/in.ndjson`]));
  const q = await LakeQuery.open(storage, catalog);
  try {
    const r = await q.query('SELECT * FROM experiment_results');
    assert.deepEqual(r.rows, []);
    assert.deepEqual(r.types, ['VARCHAR', 'VARCHAR', 'BIGINT', 'BIGINT', 'BIGINT', 'BIGINT']);
    assert.deepEqual((await q.query('SELECT * FROM experiment_significance')).rows, []);
  } finally {
    q.close();
  }
});
