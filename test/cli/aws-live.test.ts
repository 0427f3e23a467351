/**
 * The AWS end-to-end suite (issue 4): a small lake written to S3 by `tributary ingest --catalog glue:<db>` into a
 * temporary Glue database, then Athena (`tributary athena query`) must give the answers DuckDB gives on the same
 * lake (`tributary query`), and both the independent ground truth: rows per table, tracks per event,
 * experiment_results-style unique viewers and clickers, and a timestamp round trip that only passes when Athena
 * reads the Parquet INT64 timestamps with their unit (milliseconds: a unit read wrongly is off by 1000×).
 * Everything it created (tables, partitions, the database, every object under its S3 prefix, Athena's result
 * files when they are under it) is removed afterwards, whether the test passed or not.
 *
 * Live mode is opt-in; it runs only with
 *   TRIBUTARY_LIVE_AWS=1
 *   TRIBUTARY_LIVE_S3=s3://<scratch bucket>/<prefix>   the run writes under <prefix>/e2e-<run id>/ and deletes it
 *   AWS credentials and a region the SDK's default chain finds (AWS_PROFILE / AWS_ACCESS_KEY_ID…, AWS_REGION),
 *     with S3, Glue (create/delete database, tables, partitions) and Athena permissions
 * and optionally
 *   TRIBUTARY_LIVE_ATHENA_WORKGROUP   (default primary)
 *   TRIBUTARY_LIVE_ATHENA_OUTPUT      (default s3://<bucket>/<prefix>/e2e-<run id>/athena-results/)
 * The Glue database is the run's own, `tributary_e2e_<date>_<hex>`, created by the ingest and dropped at the end.
 * Endpoints may be overridden by the standard AWS_ENDPOINT_URL_S3 / _GLUE / _ATHENA variables.
 *
 * Without TRIBUTARY_LIVE_AWS=1 the live test is skipped with that reason, and the very same body runs against
 * local stand-ins instead — s3rver, the Glue stand-in and the Athena stand-in (which answers with DuckDB over
 * what the Glue stand-in registered and s3rver holds) — reached through those AWS_ENDPOINT_URL_* variables, so
 * the code path is exercised on every run, cleanup included.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { after, test, type TestContext } from 'node:test';
import { BatchDeletePartitionCommand, DeleteDatabaseCommand, DeleteTableCommand, GetDatabaseCommand, GetPartitionsCommand, GetTablesCommand, GlueClient } from '@aws-sdk/client-glue';
import { S3Client } from '@aws-sdk/client-s3';
import { GlueCatalog } from '../../src/catalog/glue-catalog.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { FileCache } from '../../src/storage/file-cache.ts';
import { parseS3Uri, S3Storage } from '../../src/storage/s3-storage.ts';
import { startAthenaStandIn } from '../support/athena-standin.ts';
import { writeTestInput } from '../support/data.ts';
import { startGlueStandIn } from '../support/glue-standin.ts';
import { expectedAnswers, type Expected } from '../support/ground-truth.ts';
import { rerunWithOpenSslLegacyProviderIfNeeded, s3rverBucket, s3rverEnv } from '../support/s3rver.ts';
import { runCli, tempDir } from '../support/tmp.ts';

rerunWithOpenSslLegacyProviderIfNeeded(); // the local mode runs s3rver in this process; it needs DES for listings

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const TABLES: Record<string, string> = { tracks: 'track', identifies: 'identify', pages: 'page', screens: 'screen', groups: 'group', aliases: 'alias' };

/** Where one run writes, and how to reach it. */
interface Target {
  mode: 'live' | 'local';
  /** s3://bucket/prefix/e2e-<run>: everything of the run is under it. */
  runRoot: string;
  /** s3://…/e2e-<run>/lake */
  lake: string;
  database: string;
  athenaArgs: string[];
  /** Given to every CLI run (over the test's own environment). */
  env: NodeJS.ProcessEnv;
  s3: S3Client;
  glue: GlueClient;
}

/** An SDK client configuration from `env` as the CLI reads it (endpoint overrides, explicit keys, region). */
function sdkConfig(env: NodeJS.ProcessEnv, service: 'S3' | 'GLUE') {
  const endpoint = env[`AWS_ENDPOINT_URL_${service}`] || env.AWS_ENDPOINT_URL || undefined;
  const credentials =
    env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) }
      : undefined; // the default chain (profiles, SSO, instance roles)
  return { endpoint, credentials, region: env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined, maxAttempts: 5 };
}

/**
 * The run's target from `env` (the process's own in live mode). Throws naming the variable when one is set but
 * invalid; returns a reason to skip when the live suite is not configured.
 */
async function targetFrom(env: NodeJS.ProcessEnv, mode: Target['mode']): Promise<Target | { skip: string }> {
  const base = env.TRIBUTARY_LIVE_S3;
  if (!base) return { skip: 'TRIBUTARY_LIVE_S3 is not set (s3://<scratch bucket>/<prefix> the live end-to-end suite may write under and delete)' };
  let parsed;
  try {
    parsed = parseS3Uri(base);
  } catch (err) {
    throw new Error(`TRIBUTARY_LIVE_S3=${JSON.stringify(base)}: ${(err as Error).message}`);
  }
  const run = `${new Date().toISOString().slice(0, 10).replace(/-/g, '')}_${randomBytes(4).toString('hex')}`;
  const runRoot = `s3://${parsed.bucket}/${parsed.prefix ? `${parsed.prefix}/` : ''}e2e-${run.replace('_', '-')}`;
  const output = env.TRIBUTARY_LIVE_ATHENA_OUTPUT || `${runRoot}/athena-results/`;
  if (!/^s3:\/\/[^/]+/.test(output)) throw new Error(`TRIBUTARY_LIVE_ATHENA_OUTPUT=${JSON.stringify(output)}: expected an S3 URI such as s3://bucket/athena-results/`);
  const s3Config = sdkConfig(env, 'S3');
  const s3 = new S3Client({
    ...s3Config,
    forcePathStyle: s3Config.endpoint !== undefined ? true : undefined,
    ...(env.AWS_REQUEST_CHECKSUM_CALCULATION === 'WHEN_REQUIRED' ? { requestChecksumCalculation: 'WHEN_REQUIRED' as const, responseChecksumValidation: 'WHEN_REQUIRED' as const } : {}),
  });
  const glue = new GlueClient(sdkConfig(env, 'GLUE'));
  try {
    await s3.config.region();
    await s3.config.credentials();
  } catch (err) {
    s3.destroy();
    glue.destroy();
    return { skip: `no AWS region or credentials for the live end-to-end suite: ${(err as Error).message}` };
  }
  return {
    mode,
    runRoot,
    lake: `${runRoot}/lake`,
    database: `tributary_e2e_${run}`,
    athenaArgs: ['--workgroup', env.TRIBUTARY_LIVE_ATHENA_WORKGROUP || 'primary', '--output', output],
    env,
    s3,
    glue,
  };
}

/**
 * Local stand-ins for S3, Glue and Athena, reached through the standard endpoint variables. The Athena stand-in
 * runs each query with DuckDB over the tables the Glue stand-in holds and the files s3rver holds (json_extract_scalar,
 * Athena's name, maps to DuckDB's json_extract_string).
 */
async function localTarget(dir: string): Promise<Target> {
  const { endpoint, bucket } = await s3rverBucket();
  const glue = await startGlueStandIn();
  let target: Target | undefined;
  const athena = await startAthenaStandIn({
    execute: async (sql, context) => {
      const t = target!;
      const { bucket: b, prefix } = parseS3Uri(t.lake);
      const storage = new S3Storage({ bucket: b, prefix, client: t.s3 });
      const catalog = new GlueCatalog({ database: context.database ?? 'default', locationRoot: t.lake, client: t.glue });
      const q = await LakeQuery.open(storage, catalog, { cache: new FileCache(storage, { dir: `${dir}/standin-cache` }) });
      try {
        await q.query('CREATE OR REPLACE TEMP MACRO json_extract_scalar(j, p) AS json_extract_string(j, p)');
        return await q.query(sql);
      } finally {
        q.close();
      }
    },
    workGroups: { primary: {} }, // no result location of its own: --output must be given, as the suite does
  });
  const env: NodeJS.ProcessEnv = {
    ...s3rverEnv(endpoint, `${dir}/cache`),
    TRIBUTARY_LIVE_S3: `s3://${bucket}/scratch`,
    AWS_ENDPOINT_URL_GLUE: glue.endpoint,
    AWS_ENDPOINT_URL_ATHENA: athena.endpoint,
  };
  const t = await targetFrom(env, 'local');
  assert.ok(!('skip' in t), 'skip' in t ? t.skip : '');
  target = t;
  return t;
}

/** Events whose times are known to the millisecond. */
const CLOCK = [
  { messageId: 'clock-1', receivedAt: '2026-11-21T10:00:00.123Z', timestamp: '2026-11-21T09:59:58.007Z' },
  { messageId: 'clock-2', receivedAt: '2026-11-22T23:59:59.999Z', timestamp: '2026-11-22T23:59:59.001Z' },
  { messageId: 'clock-3', receivedAt: '2026-11-20T00:00:00.001Z', timestamp: '2026-11-19T23:59:59.500Z' },
];

/** `2026-11-21T10:00:00.120Z` as both CLIs print a timestamp: `2026-11-21 10:00:00.12`. */
function printed(iso: string): string {
  return iso
    .replace('T', ' ')
    .replace(/Z$/, '')
    .replace(/\.(\d*?)0*$/, (_m, frac: string) => (frac ? `.${frac}` : ''));
}

/** Every table of a Glue database (GetTables followed through its pages). */
async function glueTables(glue: GlueClient, database: string): Promise<Array<{ name: string; location?: string; columns: Array<{ name?: string; type?: string }> }>> {
  const out: Array<{ name: string; location?: string; columns: Array<{ name?: string; type?: string }> }> = [];
  let token: string | undefined;
  do {
    const page = await glue.send(new GetTablesCommand({ DatabaseName: database, NextToken: token }));
    for (const x of page.TableList ?? []) {
      out.push({ name: x.Name!, location: x.StorageDescriptor?.Location, columns: (x.StorageDescriptor?.Columns ?? []).map((c) => ({ name: c.Name, type: c.Type })) });
    }
    token = page.NextToken || undefined;
  } while (token);
  return out;
}

const EPOCH = "TIMESTAMP '1970-01-01 00:00:00'";
/** One question, asked of DuckDB and of Athena in their dialects (the same text where they agree). */
const QUESTIONS = {
  perTable: Object.keys(TABLES).map((t) => `SELECT '${t}' AS t, count(*) AS n FROM ${t}`).join(' UNION ALL '),
  perEvent: 'SELECT event, count(*) AS n FROM tracks GROUP BY event',
  experiments: (extract: string) => `
    SELECT ${extract}(properties, '$.experimentName') AS experiment, ${extract}(properties, '$.variationName') AS variation,
           count(DISTINCT CASE WHEN event = 'Experiment Viewed' THEN anonymous_id END) AS unique_viewers,
           count(CASE WHEN event = 'Experiment Viewed' THEN 1 END) AS views,
           count(DISTINCT CASE WHEN event = 'Experiment Clicked' THEN anonymous_id END) AS unique_clickers,
           count(CASE WHEN event = 'Experiment Clicked' THEN 1 END) AS clicks
    FROM tracks WHERE event IN ('Experiment Viewed', 'Experiment Clicked')
    GROUP BY 1, 2 HAVING count(CASE WHEN event = 'Experiment Viewed' THEN 1 END) > 0`,
  clock: `SELECT message_id, received_at, "timestamp",
                 date_diff('millisecond', ${EPOCH}, received_at) AS received_ms, date_diff('millisecond', ${EPOCH}, "timestamp") AS timestamp_ms
          FROM tracks WHERE event = 'Clock Check' ORDER BY message_id`,
  clockRange: `SELECT count(*) AS n FROM tracks
               WHERE received_at >= TIMESTAMP '2026-11-21 10:00:00.123' AND received_at < TIMESTAMP '2026-11-21 10:00:00.124'`,
};

type Rows = Array<Record<string, unknown>>;

async function endToEnd(t: TestContext, target: Target): Promise<void> {
  const dir = tempDir(`e2e-${target.mode}`);
  const { files, lines } = writeTestInput(dir, 800, 97);
  const clockLines = CLOCK.map((c) => JSON.stringify({ type: 'track', event: 'Clock Check', anonymousId: `clock-user-${c.messageId}`, ...c }));
  writeFileSync(`${dir}/clock.ndjson`, clockLines.join('\n') + '\n');
  const expected: Expected = await expectedAnswers([...lines, ...clockLines], dir);
  const lakeArgs = ['--lake', target.lake, '--catalog', `glue:${target.database}`];

  const duck = async (sql: string): Promise<Rows> => {
    const r = await runCli(['query', ...lakeArgs, '--format', 'json', sql], { env: target.env });
    assert.equal(r.code, 0, `tributary query failed: ${r.stderr}\nSQL: ${sql}`);
    return JSON.parse(r.stdout) as Rows;
  };
  const athena = async (sql: string): Promise<Rows> => {
    const r = await runCli(['athena', 'query', '--database', target.database, ...target.athenaArgs, '--format', 'json', '--verbose', sql], { env: target.env });
    assert.equal(r.code, 0, `tributary athena query failed: ${r.stderr}\nSQL: ${sql}`);
    t.diagnostic(r.stderr.trim());
    return JSON.parse(r.stdout) as Rows;
  };
  const byKey = (rows: Rows, key: (r: Record<string, unknown>) => string, value: (r: Record<string, unknown>) => unknown) =>
    Object.fromEntries(rows.map((r) => [key(r), value(r)]).sort(([a], [b]) => ((a as string) < (b as string) ? -1 : 1)));

  const cleanup = once(() => removeRun(t, target));
  after(cleanup); // also when the test is cancelled (timeout) before its finally
  let passed = false;
  try {
    const ingest = await runCli(['ingest', ...lakeArgs, '--json', ...files, `${dir}/clock.ndjson`], { env: target.env });
    assert.equal(ingest.code, 0, ingest.stderr);
    const stats = JSON.parse(ingest.stdout) as { written: number; deadLettered: number };
    assert.deepEqual([stats.written, stats.deadLettered], [expected.valid, expected.invalid]);

    // Glue holds the six tables, at the lake's root, with their partitions.
    const tables = await glueTables(target.glue, target.database);
    assert.deepEqual(tables.map((x) => x.name).sort(), Object.keys(TABLES).sort());
    for (const x of tables) assert.ok(x.location?.startsWith(`${target.lake}/`), `${x.name} at ${x.location}`);
    const tracks = tables.find((x) => x.name === 'tracks')!;
    assert.deepEqual(tracks.columns.filter((c) => c.type === 'timestamp').map((c) => c.name), ['timestamp', 'original_timestamp', 'sent_at', 'received_at']);

    // Rows per table.
    const perTable = { duck: byKey(await duck(QUESTIONS.perTable), (r) => String(r.t), (r) => r.n), athena: byKey(await athena(QUESTIONS.perTable), (r) => String(r.t), (r) => r.n) };
    assert.deepEqual(perTable.athena, perTable.duck);
    assert.deepEqual(perTable.duck, Object.fromEntries(Object.entries(TABLES).map(([table, type]) => [table, expected.perType[type] ?? 0]).sort()));

    // Tracks per event (hostile names included).
    const ev = (r: Record<string, unknown>) => String(r.event);
    const perEvent = { duck: byKey(await duck(QUESTIONS.perEvent), ev, (r) => r.n), athena: byKey(await athena(QUESTIONS.perEvent), ev, (r) => r.n) };
    assert.deepEqual(perEvent.athena, perEvent.duck);
    assert.deepEqual(perEvent.duck, Object.fromEntries(Object.entries(expected.perEvent).sort(([a], [b]) => (a < b ? -1 : 1))));

    // experiment_results-style uniques: viewers and clickers per experiment and variation.
    const ex = (r: Record<string, unknown>) => `${r.experiment}|${r.variation}`;
    const counts = (r: Record<string, unknown>) => [r.unique_viewers, r.views, r.unique_clickers, r.clicks];
    const experiments = {
      duck: byKey(await duck(QUESTIONS.experiments('json_extract_string')), ex, counts),
      athena: byKey(await athena(QUESTIONS.experiments('json_extract_scalar')), ex, counts),
    };
    assert.deepEqual(experiments.athena, experiments.duck);
    assert.deepEqual(experiments.duck, Object.fromEntries(Object.entries(expected.experiments).sort(([a], [b]) => (a < b ? -1 : 1))));
    assert.ok(Object.keys(experiments.duck).length >= 2, 'the sample has experiments');

    // Timestamps: the same instants, to the millisecond, printed and as epoch milliseconds.
    const clock = { duck: await duck(QUESTIONS.clock), athena: await athena(QUESTIONS.clock) };
    assert.deepEqual(clock.athena, clock.duck);
    assert.deepEqual(
      clock.duck,
      CLOCK.map((c) => ({
        message_id: c.messageId,
        received_at: printed(c.receivedAt),
        timestamp: printed(c.timestamp),
        received_ms: Date.parse(c.receivedAt),
        timestamp_ms: Date.parse(c.timestamp),
      })),
    );
    assert.deepEqual(await athena(QUESTIONS.clockRange), [{ n: 1 }]);
    assert.deepEqual(await duck(QUESTIONS.clockRange), [{ n: 1 }]);
    passed = true;
  } finally {
    const problems = await cleanup();
    if (passed) assert.deepEqual(problems, [], 'cleanup removed everything');
    else for (const p of problems) t.diagnostic(`cleanup: ${p}`);
  }
  // Nothing is left: no database, no object under the run's prefix.
  const gone = await target.glue.send(new GetDatabaseCommand({ Name: target.database })).then(
    () => 'still there',
    (err: Error) => err.name,
  );
  assert.equal(gone, 'EntityNotFoundException');
  const { bucket, prefix } = parseS3Uri(target.runRoot);
  assert.deepEqual(await new S3Storage({ bucket, prefix, client: target.s3 }).list('', { recursive: true }), []);
}

function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

/**
 * Drops the run's tables (partitions first, 25 per BatchDeletePartition) and database, and deletes every object
 * under the run's prefix. Never throws: returns what it could not do. Tables outside the run's lake are left alone,
 * and then so is the database.
 */
async function removeRun(t: TestContext, target: Target): Promise<string[]> {
  const problems: string[] = [];
  const db = target.database;
  let foreign = false;
  try {
    for (const table of await glueTables(target.glue, db)) {
      if (!table.location?.startsWith(`${target.lake}/`)) {
        foreign = true;
        problems.push(`table ${db}.${table.name} is at ${table.location}, outside ${target.lake}/: left alone`);
        continue;
      }
      const values: Array<{ Values: string[] }> = [];
      let next: string | undefined;
      do {
        const page = await target.glue.send(new GetPartitionsCommand({ DatabaseName: db, TableName: table.name, NextToken: next, ExcludeColumnSchema: true }));
        for (const p of page.Partitions ?? []) values.push({ Values: p.Values ?? [] });
        next = page.NextToken || undefined;
      } while (next);
      for (let i = 0; i < values.length; i += 25) {
        const out = await target.glue.send(new BatchDeletePartitionCommand({ DatabaseName: db, TableName: table.name, PartitionsToDelete: values.slice(i, i + 25) }));
        for (const e of out.Errors ?? []) problems.push(`partition ${JSON.stringify(e.PartitionValues)} of ${db}.${table.name}: ${e.ErrorDetail?.ErrorCode} ${e.ErrorDetail?.ErrorMessage}`);
      }
      await target.glue.send(new DeleteTableCommand({ DatabaseName: db, Name: table.name }));
    }
    if (!foreign) await target.glue.send(new DeleteDatabaseCommand({ Name: db }));
  } catch (err) {
    if ((err as Error).name !== 'EntityNotFoundException') problems.push(`Glue database ${db}: ${(err as Error).name}: ${(err as Error).message}`);
  }
  try {
    const { bucket, prefix } = parseS3Uri(target.runRoot);
    const storage = new S3Storage({ bucket, prefix, client: target.s3 });
    const keys = (await storage.list('', { recursive: true })).map((o) => o.key);
    await storage.delete(keys);
    t.diagnostic(`cleanup: dropped ${db}, deleted ${keys.length} objects under ${target.runRoot}/`);
  } catch (err) {
    problems.push(`objects under ${target.runRoot}/: ${(err as Error).message}`);
  }
  return problems;
}

const LIVE_TIMEOUT_MS = 20 * 60_000;

if (process.env.TRIBUTARY_LIVE_AWS === '1') {
  const live = await targetFrom(process.env, 'live');
  if ('skip' in live) {
    test('AWS end-to-end (live S3, Glue, Athena)', { skip: live.skip }, () => {});
  } else {
    after(() => {
      live.s3.destroy();
      live.glue.destroy();
    });
    test(`AWS end-to-end (live S3, Glue, Athena): ${live.lake}, database ${live.database}`, { timeout: LIVE_TIMEOUT_MS }, (t) => endToEnd(t, live));
  }
} else {
  test('AWS end-to-end (live S3, Glue, Athena)', {
    skip: 'live AWS tests are opt-in: set TRIBUTARY_LIVE_AWS=1, TRIBUTARY_LIVE_S3=s3://<scratch bucket>/<prefix> and AWS credentials and region (optionally TRIBUTARY_LIVE_ATHENA_WORKGROUP, TRIBUTARY_LIVE_ATHENA_OUTPUT)',
  }, () => {});
}

test('AWS end-to-end, the same body against local stand-ins (s3rver, Glue and Athena stand-ins through AWS_ENDPOINT_URL_*)', async (t) => {
  const target = await localTarget(tempDir('e2e-local-mode'));
  after(() => {
    target.s3.destroy();
    target.glue.destroy();
  });
  await endToEnd(t, target);
});
