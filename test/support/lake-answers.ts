import assert from 'node:assert/strict';
import { runCli } from './tmp.ts';
import type { Expected } from './ground-truth.ts';

/** Runs SQL through the real CLI and returns the rows as objects. */
export async function cliQuery(lake: string, sql: string, env?: NodeJS.ProcessEnv, extra: string[] = []): Promise<Record<string, unknown>[]> {
  const r = await runCli(['query', '--lake', lake, ...extra, '--format', 'json', sql], { env });
  if (r.code !== 0) throw new Error(`query failed (${r.code}): ${r.stderr}\nSQL: ${sql}`);
  return JSON.parse(r.stdout) as Record<string, unknown>[];
}

const cliQueryWith = cliQuery;
const TABLES = ['tracks', 'identifies', 'pages', 'screens', 'groups', 'aliases'];

/** The same answers as Expected, asked of the lake. */
export async function lakeAnswers(lake: string, env?: NodeJS.ProcessEnv, extra: string[] = []): Promise<Omit<Expected, 'invalid' | 'valid'> & { total: number; distinctIds: number }> {
  const cliQuery = (l: string, sql: string) => cliQueryWith(l, sql, env, extra);
  const perType: Record<string, number> = {};
  for (const t of TABLES) {
    const [r] = await cliQuery(lake, `SELECT any_value(type) AS type, count(*) AS n FROM ${t}`);
    if (r!.n !== 0) perType[r!.type as string] = r!.n as number;
  }
  const perEvent = Object.fromEntries((await cliQuery(lake, 'SELECT event, count(*) AS n FROM tracks GROUP BY 1')).map((r) => [r.event, r.n]));
  const experiments = Object.fromEntries(
    (await cliQuery(lake, 'SELECT * FROM experiment_results')).map((r) => [
      `${r.experiment_name}|${r.variation_name}`,
      [r.unique_views, r.total_views, r.unique_clicks, r.total_clicks] as [number, number, number, number],
    ]),
  );
  const union = TABLES.map((t) => `SELECT dt, anonymous_id, message_id FROM ${t}`).join(' UNION ALL ');
  const anonPerDay = Object.fromEntries(
    (await cliQuery(lake, `SELECT strftime(dt, '%Y-%m-%d') AS d, count(DISTINCT anonymous_id) AS n FROM (${union}) GROUP BY 1`)).map((r) => [r.d, r.n]),
  );
  const [rev] = await cliQuery(lake, `SELECT coalesce(sum(round(CAST(json_extract_string(properties, '$.revenue') AS DOUBLE) * 100)), 0)::BIGINT AS c FROM tracks WHERE event = 'Order Completed'`);
  const [ids] = await cliQuery(lake, `SELECT count(*) AS total, count(DISTINCT message_id) AS d FROM (${union})`);
  return { perType, perEvent, experiments, anonPerDay, revenueCents: rev!.c as number, total: ids!.total as number, distinctIds: ids!.d as number };
}

/** Asserts that the lake's answers equal the independent ground truth, every figure. */
export function assertGroundTruth(got: Awaited<ReturnType<typeof lakeAnswers>>, expected: Expected): void {
  assert.deepEqual(got.perType, expected.perType);
  assert.deepEqual(got.perEvent, expected.perEvent);
  assert.deepEqual(got.experiments, expected.experiments);
  assert.deepEqual(got.anonPerDay, expected.anonPerDay);
  assert.equal(got.revenueCents, expected.revenueCents);
  assert.equal(got.total, expected.valid, 'no event lost');
  assert.equal(got.distinctIds, got.total, 'no message_id twice');
}
