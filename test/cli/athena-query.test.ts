import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { startAthenaStandIn } from '../support/athena-standin.ts';
import { writeTestInput } from '../support/data.ts';
import { runCli, tempDir } from '../support/tmp.ts';

// A sample lake; the Athena stand-in answers with DuckDB over it, in this process; the CLI runs as a child.
const dir = tempDir('cli-athena');
const lakeDir = `${dir}/lake`;
const { files } = writeTestInput(dir, 2500, 73);
const { storage, catalog } = openLocalLake(lakeDir);
await new Ingestor(storage, catalog).run(new FileSource(files));
const lake = await LakeQuery.open(storage, catalog);
after(() => lake.close());

function env(endpoint: string): NodeJS.ProcessEnv {
  return { AWS_ENDPOINT_URL_ATHENA: endpoint, AWS_ACCESS_KEY_ID: 'AKIDSTANDIN', AWS_SECRET_ACCESS_KEY: 'standin-secret', AWS_REGION: 'us-east-1' };
}

test('athena query prints exactly what tributary query prints, in every format', async () => {
  const standIn = await startAthenaStandIn({ execute: (sql) => lake.query(sql), databases: ['analytics'] });
  const cases: Array<[string, string[]]> = [
    ['SELECT message_id, user_id, received_at, properties FROM tracks ORDER BY message_id', ['table', 'json', 'csv', 'ndjson']],
    ['SELECT event, count(*) AS n, count(DISTINCT anonymous_id) AS users FROM tracks GROUP BY 1 ORDER BY 1', ['table', 'json']],
    ['SELECT * FROM experiment_results ORDER BY experiment_name, variation_name', ['table', 'csv']],
  ];
  for (const [sql, formats] of cases) {
    for (const format of formats) {
      const local = await runCli(['query', '--lake', lakeDir, '--format', format, sql]);
      assert.equal(local.code, 0, local.stderr);
      const remote = await runCli(['athena', 'query', '--database', 'analytics', '--workgroup', 'primary', '--format', format, sql], { env: env(standIn.endpoint) });
      assert.equal(remote.code, 0, remote.stderr);
      assert.equal(remote.stdout, local.stdout, `${format}: ${sql}`);
    }
  }
  const big = standIn.succeeded('GetQueryResults').length;
  assert.ok(big >= 4 * 2 + 4, `the long result came in several pages (${big} GetQueryResults calls)`);
  const v = await runCli(['athena', 'query', '--database', 'analytics', '--verbose', 'SELECT 1 AS one'], { env: env(standIn.endpoint) });
  assert.match(v.stderr, /^athena: query [0-9a-f-]{36} SUCCEEDED: 1 rows, 0 B scanned/);
  const stdin = await runCli(['athena', 'query', '--database', 'analytics', '--format', 'json', '-'], { env: env(standIn.endpoint), input: 'SELECT 2 AS two' });
  assert.equal(stdin.stdout, '[{"two":2}]\n');
});

test("athena query exits 1 with Athena's reason on FAILED, 2 on bad usage", async () => {
  const standIn = await startAthenaStandIn({ execute: (sql) => lake.query(sql), databases: ['analytics'] });
  const e = env(standIn.endpoint);
  const failed = await runCli(['athena', 'query', '--database', 'analytics', 'SELECT nope FROM tracks'], { env: e });
  assert.equal(failed.code, 1);
  const reason = [...standIn.executions.values()].find((x) => x.state === 'FAILED')!.reason!;
  assert.ok(failed.stderr.includes(reason), failed.stderr);
  assert.match(failed.stderr, /^tributary athena: Athena query [0-9a-f-]{36} FAILED: /);
  const schema = await runCli(['athena', 'query', '--database', 'other', 'SELECT 1'], { env: e });
  assert.equal(schema.code, 1);
  assert.match(schema.stderr, /SCHEMA_NOT_FOUND: Schema 'other' does not exist/);
  const syntax = await runCli(['athena', 'query', 'SELEC 1'], { env: e });
  assert.equal(syntax.code, 1);
  assert.match(syntax.stderr, /line 1:1: syntax error at or near "SELEC"/);

  const usage: Array<[string[], RegExp]> = [
    [[], /expected one SQL statement/],
    [['SELECT 1', 'SELECT 2'], /expected one SQL statement .*got 2/],
    [['--format', 'xml', 'SELECT 1'], /--format: "xml" is not valid/],
    [['--workgroup', 'has space', 'SELECT 1'], /Athena workgroup: "has space"/],
    [['--output', 'results/', 'SELECT 1'], /output location: "results\/"/],
    [['--endpoint', 'ftp://x', 'SELECT 1'], /Athena endpoint: "ftp:\/\/x"/],
    [['--timeout', 'soon', 'SELECT 1'], /--timeout/],
    [['--lake', lakeDir, 'SELECT 1'], /--lake applies to athena ddl/],
    [['--bogus', 'SELECT 1'], /Unknown option '--bogus'/],
  ];
  for (const [args, message] of usage) {
    const r = await runCli(['athena', 'query', ...args], { env: e });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  const ddl = await runCli(['athena', 'ddl', '--lake', lakeDir, '--workgroup', 'x']);
  assert.equal(ddl.code, 2);
  assert.match(ddl.stderr, /--workgroup applies to athena query/);
  assert.equal(standIn.executions.size, 2, 'the syntax error was refused at the start; usage errors never reached Athena');
});

test('--output, --endpoint and --region go to Athena; a workgroup without results location needs --output', async () => {
  const standIn = await startAthenaStandIn({ execute: (sql) => lake.query(sql), workGroups: { primary: {}, etl: {} } });
  const noEnv = { AWS_ACCESS_KEY_ID: 'AKIDSTANDIN', AWS_SECRET_ACCESS_KEY: 'standin-secret', AWS_REGION: '', AWS_ENDPOINT_URL_ATHENA: '', AWS_ENDPOINT_URL: '' };
  const base = ['athena', 'query', '--endpoint', standIn.endpoint, '--region', 'eu-west-1', '--format', 'csv'];
  const missing = await runCli([...base, 'SELECT 1 AS x'], { env: noEnv });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /No output location provided/);
  const ok = await runCli([...base, '--workgroup', 'etl', '--output', 's3://results-bucket/athena/', 'SELECT count(*) AS n FROM tracks'], { env: noEnv });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, (await runCli(['query', '--lake', lakeDir, '--format', 'csv', 'SELECT count(*) AS n FROM tracks'])).stdout);
  const start = standIn.succeeded('StartQueryExecution')[0]!;
  assert.equal(start.body.WorkGroup, 'etl');
  assert.deepEqual(start.body.ResultConfiguration, { OutputLocation: 's3://results-bucket/athena/' });
  assert.equal(start.body.QueryExecutionContext, undefined, 'no --database: no context');
});
