import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { GetQueryResultsCommand, StartQueryExecutionCommand } from '@aws-sdk/client-athena';
import { athenaValue, AthenaQuery } from '../../src/athena/athena-query.ts';
import { FORMATS, formatResult } from '../../src/cli/format.ts';
import { ConfigError, QueryError } from '../../src/errors.ts';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { LakeQuery } from '../../src/query/lake-query.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { startAthenaStandIn, javaDouble, type AthenaExecutor, type AthenaStandIn } from '../support/athena-standin.ts';
import { writeTestInput } from '../support/data.ts';
import { expectedAnswers, type Expected } from '../support/ground-truth.ts';
import { tempDir } from '../support/tmp.ts';

// The sample lake, a LakeQuery over it, and an executor that answers the stand-in with it.
const dir = tempDir('athena-q');
const { files, lines } = writeTestInput(dir, 3000, 71);
const expected: Expected = await expectedAnswers(lines, dir);
const { storage, catalog } = openLocalLake(`${dir}/lake`);
await new Ingestor(storage, catalog).run(new FileSource(files));
const lake = await LakeQuery.open(storage, catalog);
after(() => lake.close());
const viaLake: AthenaExecutor = (sql) => lake.query(sql);

function runner(standIn: AthenaStandIn, options: ConstructorParameters<typeof AthenaQuery>[0] = {}): AthenaQuery {
  return new AthenaQuery({ client: standIn.client(), database: 'analytics', poll: { initialDelayMs: 1, maxDelayMs: 5 }, ...options });
}

const TYPED_SQL = `SELECT 42::INTEGER AS i, 9007199254740993::BIGINT AS big, 7::BIGINT AS small, 2.0::DOUBLE AS d, 1e20::DOUBLE AS e,
  0.000125::DOUBLE AS tiny, 'NaN'::DOUBLE AS nan, true AS b, NULL::VARCHAR AS z, DATE '2026-11-21' AS dt,
  TIMESTAMP_MS '2026-11-21 10:00:00.120' AS ts, TIMESTAMP_MS '2026-11-21 10:00:00' AS ts0, 12.50::DECIMAL(10,2) AS dec,
  'it''s, "x"' AS s, '{"a":[1,2]}'::JSON AS j`;

describe('AthenaQuery through the real SDK against the stand-in', () => {
  test('answers equal tributary query (LakeQuery) on the sample lake, printed identically in every format', async () => {
    const standIn = await startAthenaStandIn({ execute: viaLake });
    const athena = runner(standIn);
    const queries = [
      'SELECT event, count(*) AS n FROM tracks GROUP BY 1 ORDER BY 1',
      'SELECT * FROM experiment_results ORDER BY experiment_name, variation_name',
      'SELECT message_id, user_id, anonymous_id, received_at, properties, dt FROM tracks ORDER BY message_id LIMIT 40',
      "SELECT type, count(*) AS n, max(received_at) AS last FROM pages WHERE dt >= DATE '2026-11-21' GROUP BY 1",
      TYPED_SQL,
    ];
    for (const sql of queries) {
      const want = await lake.query(sql);
      const got = await athena.run(sql);
      assert.deepEqual(got.columns, want.columns, sql);
      assert.deepEqual(got.rows, want.rows, sql);
      for (const f of FORMATS) assert.equal(formatResult(got, f), formatResult(want, f), `${f}: ${sql}`);
    }
    const perEvent = await athena.run('SELECT event, count(*) AS n FROM tracks GROUP BY 1');
    assert.deepEqual(Object.fromEntries(perEvent.rows.map(([e, n]) => [e, n])), expected.perEvent, 'ground truth');
  });

  test('values are typed from ColumnInfo: Athena type names, NULL as a missing VarCharValue', async () => {
    const standIn = await startAthenaStandIn({ execute: viaLake });
    const got = await runner(standIn).run(TYPED_SQL);
    assert.deepEqual(got.types, ['integer', 'bigint', 'bigint', 'double', 'double', 'double', 'double', 'boolean', 'varchar', 'date', 'timestamp', 'timestamp', 'decimal(10,2)', 'varchar', 'varchar']);
    assert.deepEqual(got.rows[0], [42, '9007199254740993', 7, 2, 1e20, 0.000125, 'NaN', true, null, '2026-11-21', '2026-11-21 10:00:00.12', '2026-11-21 10:00:00', '12.50', 'it\'s, "x"', '{"a":[1,2]}']);
    // What went over the wire is Athena's text: Java doubles, millisecond timestamps, an empty Datum for NULL.
    const page = await standIn.client().send(new GetQueryResultsCommand({ QueryExecutionId: got.queryExecutionId }));
    const data = page.ResultSet!.Rows![1]!.Data!;
    assert.deepEqual(data.map((d) => d.VarCharValue), ['42', '9007199254740993', '7', '2.0', '1.0E20', '1.25E-4', 'NaN', 'true', undefined, '2026-11-21', '2026-11-21 10:00:00.120', '2026-11-21 10:00:00.000', '12.50', 'it\'s, "x"', '{"a":[1,2]}']);
    assert.deepEqual(page.ResultSet!.Rows![0]!.Data!.map((d) => d.VarCharValue), got.columns, 'the first row of a SELECT is the header');
  });

  test('pages through more than 1000 rows (the header only on the first page)', async () => {
    const standIn = await startAthenaStandIn({ execute: viaLake });
    const sql = 'SELECT message_id, event, received_at FROM tracks ORDER BY message_id';
    const want = await lake.query(sql);
    assert.ok(want.rows.length > 2000, `${want.rows.length} rows`);
    const got = await runner(standIn).run(sql);
    assert.deepEqual(got.rows, want.rows);
    const pages = standIn.succeeded('GetQueryResults');
    assert.equal(pages.length, Math.ceil((want.rows.length + 1) / 1000));
    assert.ok(pages.every((p) => p.body.MaxResults === 1000));
    assert.equal(pages[0]!.body.NextToken, undefined);
    assert.ok(pages.slice(1).every((p) => typeof p.body.NextToken === 'string'));

    const small = await runner(standIn, { pageSize: 7 }).run('SELECT message_id FROM tracks ORDER BY 1 LIMIT 20');
    assert.deepEqual(small.rows, (await lake.query('SELECT message_id FROM tracks ORDER BY 1 LIMIT 20')).rows);
    const empty = await runner(standIn).run("SELECT message_id FROM tracks WHERE event = 'no such event'");
    assert.deepEqual([empty.columns, empty.rows], [['message_id'], []]);
  });

  test('goes QUEUED → RUNNING → SUCCEEDED over polls of GetQueryExecution', async () => {
    const standIn = await startAthenaStandIn({ execute: viaLake, pollsPerState: 2 });
    const got = await runner(standIn).run('SELECT count(*) AS n FROM tracks');
    const e = standIn.executions.get(got.queryExecutionId)!;
    // Two polls per state at least; RUNNING lasts longer when the SQL itself is slow (a loaded machine).
    assert.match(e.answered.join(' '), /^QUEUED QUEUED RUNNING RUNNING( RUNNING)* SUCCEEDED$/);
    const start = standIn.succeeded('StartQueryExecution')[0]!.body;
    assert.equal(start.WorkGroup, 'primary');
    assert.deepEqual(start.QueryExecutionContext, { Database: 'analytics' });
    assert.equal(start.ResultConfiguration, undefined, 'the workgroup result location applies');
    assert.equal(String(start.ClientRequestToken).length, 36);
  });

  test("FAILED surfaces Athena's StateChangeReason verbatim; a syntax error is refused at the start", async () => {
    const standIn = await startAthenaStandIn({ execute: viaLake });
    const athena = runner(standIn);
    const err = await athena.run('SELECT no_such_column FROM tracks').then(() => assert.fail('should fail'), (e: unknown) => e);
    assert.ok(err instanceof QueryError);
    const failed = [...standIn.executions.values()].find((e) => e.state === 'FAILED')!;
    assert.ok(failed.reason!.includes('no_such_column'));
    assert.ok(err.message.includes(failed.reason!), err.message);
    assert.match(err.message, new RegExp(`^Athena query ${failed.id} FAILED: `));

    await assert.rejects(athena.run('SELEC 1'), (e: unknown) => e instanceof QueryError && /line 1:1: syntax error at or near "SELEC"/.test(e.message));
    await assert.rejects(athena.run('SELECT * FROM nowhere'), (e: unknown) => e instanceof QueryError && /FAILED: .*nowhere/.test(e.message));
    const noSchema = await startAthenaStandIn({ execute: viaLake, databases: ['events'] });
    await assert.rejects(runner(noSchema).run('SELECT 1'), /FAILED: SCHEMA_NOT_FOUND: Schema 'analytics' does not exist/);
  });

  test('a workgroup without a result location needs outputLocation; unknown workgroups are refused', async () => {
    const standIn = await startAthenaStandIn({ execute: viaLake, workGroups: { primary: {}, adhoc: { outputLocation: 's3://results/adhoc/' } } });
    await assert.rejects(runner(standIn).run('SELECT 1 AS x'), /No output location provided/);
    const got = await runner(standIn, { outputLocation: 's3://my-results/athena/' }).run('SELECT 1 AS x');
    assert.deepEqual(got.rows, [[1]]);
    assert.deepEqual(standIn.succeeded('StartQueryExecution')[0]!.body.ResultConfiguration, { OutputLocation: 's3://my-results/athena/' });
    assert.deepEqual((await runner(standIn, { workGroup: 'adhoc' }).run('SELECT 2 AS x')).rows, [[2]]);
    await assert.rejects(runner(standIn, { workGroup: 'nope' }).run('SELECT 1'), /WorkGroup nope is not found/);
  });

  test('the start is idempotent: a lost answer retried with the same ClientRequestToken runs the query once', async () => {
    const standIn = await startAthenaStandIn({ execute: viaLake });
    standIn.failNext(1, 'network-after', { operation: 'StartQueryExecution' });
    const athena = new AthenaQuery({ client: standIn.client({ maxAttempts: 3 }), poll: { initialDelayMs: 1 } });
    const got = await athena.run('SELECT count(*) AS n FROM tracks');
    const starts = standIn.requests.filter((r) => r.operation === 'StartQueryExecution');
    assert.equal(starts.length, 2, 'the SDK retried the start');
    assert.equal(starts[0]!.body.ClientRequestToken, starts[1]!.body.ClientRequestToken);
    assert.equal(standIn.executions.size, 1, 'one query ran');
    assert.equal(got.rows[0]![0], expected.perType.track);

    const token = 'tributary-test-token-0123456789abcdef';
    const a = await athena.start('SELECT 1', { clientRequestToken: token });
    assert.equal(await athena.start('SELECT 1', { clientRequestToken: token }), a);
    await assert.rejects(athena.start('SELECT 2', { clientRequestToken: token }), /Idempotent parameters do not match/);
  });

  test('throttling and server errors are retried by the SDK; after that the QueryError is retriable', async () => {
    const standIn = await startAthenaStandIn({ execute: viaLake });
    standIn.failNext(2, 'TooManyRequestsException', { operation: 'GetQueryExecution' });
    standIn.failNext(1, 'InternalServerException', { operation: 'GetQueryResults' });
    const athena = new AthenaQuery({ client: standIn.client({ maxAttempts: 4 }), poll: { initialDelayMs: 1 } });
    assert.deepEqual((await athena.run('SELECT 3 AS x')).rows, [[3]]);
    standIn.failNext(5, 'InternalServerException', { operation: 'StartQueryExecution' });
    await assert.rejects(runner(standIn).run('SELECT 1'), (e: unknown) => e instanceof QueryError && e.retriable && /InternalServerException/.test(e.message));
  });

  test('abort and timeout stop the query (StopQueryExecution) and reject', async () => {
    const never: AthenaExecutor = () => new Promise(() => undefined);
    const standIn = await startAthenaStandIn({ execute: never });
    const ac = new AbortController();
    const running = runner(standIn).run('SELECT 1', { signal: ac.signal });
    while (standIn.succeeded('GetQueryExecution').length < 3) await new Promise((r) => setTimeout(r, 5));
    ac.abort(new Error('interrupted by the user'));
    await assert.rejects(running, (e: unknown) => e instanceof QueryError && /was stopped: interrupted by the user/.test(e.message));
    assert.equal(standIn.succeeded('StopQueryExecution').length, 1);
    assert.equal([...standIn.executions.values()][0]!.state, 'CANCELLED');

    await assert.rejects(runner(standIn, { timeoutMs: 30 }).run('SELECT 2'), (e: unknown) => e instanceof QueryError && e.retriable && /did not finish within 30 ms .*stopped/.test(e.message));
    assert.equal(standIn.succeeded('StopQueryExecution').length, 2);
    assert.ok([...standIn.executions.values()].every((e) => e.state === 'CANCELLED'));
  });
});

describe('the stand-in enforces the documented request shapes', () => {
  async function raw(standIn: AthenaStandIn, operation: string, body: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(standIn.endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-amz-json-1.1', 'X-Amz-Target': `AmazonAthena.${operation}`, Authorization: 'AWS4-HMAC-SHA256 Credential=x', ...headers },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as { __type?: string; Message?: string; QueryExecutionId?: string } };
  }
  const token = 'a'.repeat(32);

  test('StartQueryExecution: QueryString required, 1..262144 characters; ClientRequestToken required, 32..128; WorkGroup pattern', async () => {
    const standIn = await startAthenaStandIn({ execute: viaLake });
    const missing = await raw(standIn, 'StartQueryExecution', { ClientRequestToken: token });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.__type, 'InvalidRequestException');
    assert.match(missing.body.Message!, /Value null at 'queryString' failed to satisfy constraint: Member must not be null/);
    assert.match((await raw(standIn, 'StartQueryExecution', { QueryString: '', ClientRequestToken: token })).body.Message!, /at 'queryString' .*greater than or equal to 1/);
    assert.match((await raw(standIn, 'StartQueryExecution', { QueryString: 'x'.repeat(262_145), ClientRequestToken: token })).body.Message!, /less than or equal to 262144/);
    assert.match((await raw(standIn, 'StartQueryExecution', { QueryString: 'SELECT 1' })).body.Message!, /ClientRequestToken is required/);
    assert.match((await raw(standIn, 'StartQueryExecution', { QueryString: 'SELECT 1', ClientRequestToken: 'short' })).body.Message!, /at 'clientRequestToken' .*greater than or equal to 32/);
    assert.match((await raw(standIn, 'StartQueryExecution', { QueryString: 'SELECT 1', ClientRequestToken: token, WorkGroup: 'no spaces!' })).body.Message!, /at 'workGroup' failed to satisfy constraint: Member must satisfy regular expression pattern/);
    assert.match((await raw(standIn, 'StartQueryExecution', { QueryString: 'SELECT 1', ClientRequestToken: token, QueryExecutionContext: { Database: '' } })).body.Message!, /queryExecutionContext\.database/);
    const wrongType = await raw(standIn, 'StartQueryExecution', { QueryString: 42, ClientRequestToken: token });
    assert.equal(wrongType.body.__type, 'SerializationException');
    const ok = await raw(standIn, 'StartQueryExecution', { QueryString: 'SELECT 1 AS one', ClientRequestToken: token });
    assert.equal(ok.status, 200);
    assert.equal(standIn.executions.size, 1, 'only the valid request started a query');
  });

  test('GetQueryResults: MaxResults 1..1000, NextToken of this query only, not before SUCCEEDED; unknown ids', async () => {
    const standIn = await startAthenaStandIn({ execute: viaLake });
    const id = (await raw(standIn, 'StartQueryExecution', { QueryString: 'SELECT 1 AS one', ClientRequestToken: token })).body.QueryExecutionId!;
    assert.match((await raw(standIn, 'GetQueryResults', { QueryExecutionId: id })).body.Message!, /Query has not yet finished. Current state: QUEUED/);
    while ((await raw(standIn, 'GetQueryExecution', { QueryExecutionId: id })).status === 200 && standIn.executions.get(id)!.state !== 'SUCCEEDED') {
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.match((await raw(standIn, 'GetQueryResults', { QueryExecutionId: id, MaxResults: 0 })).body.Message!, /at 'maxResults' .*greater than or equal to 1/);
    assert.match((await raw(standIn, 'GetQueryResults', { QueryExecutionId: id, MaxResults: 1001 })).body.Message!, /less than or equal to 1000/);
    assert.equal((await raw(standIn, 'GetQueryResults', { QueryExecutionId: id, MaxResults: '10' })).body.__type, 'SerializationException');
    const bad = await raw(standIn, 'GetQueryResults', { QueryExecutionId: id, NextToken: 'not-a-token' });
    assert.deepEqual([bad.status, bad.body.__type], [400, 'InvalidRequestException']);
    assert.match((await raw(standIn, 'GetQueryResults', {})).body.Message!, /'queryExecutionId' failed to satisfy constraint: Member must not be null/);
    assert.match((await raw(standIn, 'GetQueryExecution', { QueryExecutionId: 'no-such-query' })).body.Message!, /QueryExecution no-such-query was not found/);
    assert.match((await raw(standIn, 'StopQueryExecution', { QueryExecutionId: 'has space' })).body.Message!, /regular expression pattern: \\S\+/);
    assert.equal((await raw(standIn, 'GetQueryResults', { QueryExecutionId: id }, { 'X-Amz-Target': '' })).body.__type, 'UnknownOperationException');
    // The SDK does not check these limits itself: the stand-in does.
    await assert.rejects(standIn.client().send(new GetQueryResultsCommand({ QueryExecutionId: id, MaxResults: 5000 })), { name: 'InvalidRequestException' });
    await assert.rejects(standIn.client().send(new StartQueryExecutionCommand({ QueryString: 'SELECT 1', ClientRequestToken: 'x' })), { name: 'InvalidRequestException' });
  });
});

test('options are validated at construction, naming the value and the limit', async () => {
  const bad: Array<[ConstructorParameters<typeof AthenaQuery>[0], RegExp]> = [
    [{ workGroup: 'has space' }, /Athena workgroup: "has space" is not valid; expected 1 to 128 letters/],
    [{ database: '' }, /Athena database/],
    [{ pageSize: 1001 }, /pageSize: 1001 .*1 to 1000/],
    [{ pageSize: 0 }, /pageSize/],
    [{ poll: { initialDelayMs: 0 } }, /poll.initialDelayMs/],
    [{ poll: { initialDelayMs: 500, maxDelayMs: 100 } }, /poll.maxDelayMs: 100 .*from poll.initialDelayMs \(500\)/],
    [{ poll: { factor: 0.5 } }, /poll.factor/],
    [{ timeoutMs: 0 }, /timeoutMs/],
    [{ outputLocation: '/tmp/results' }, /output location: "\/tmp\/results" .*s3:\/\//],
    [{ endpoint: 'ftp://x' }, /Athena endpoint/],
    [{ region: 'US East' }, /Athena region/],
    [{ catalog: '' }, /Athena catalog/],
  ];
  for (const [options, message] of bad) assert.throws(() => new AthenaQuery(options), (e: unknown) => e instanceof ConfigError && message.test(e.message), JSON.stringify(options));
  const athena = new AthenaQuery({ region: 'us-east-1', endpoint: 'http://127.0.0.1:1' });
  assert.equal(athena.workGroup, 'primary');
  athena.destroy();
  assert.throws(() => new AthenaQuery({ client: {} as never, region: 'us-east-1' }), /region cannot be combined/);
  const unused = new AthenaQuery({ region: 'us-east-1', endpoint: 'http://127.0.0.1:1' });
  await assert.rejects(unused.run(''), (e: unknown) => e instanceof ConfigError && /non-empty SQL/.test(e.message));
  await assert.rejects(unused.run('x'.repeat(262_145)), /at most 262144 characters/);
  await assert.rejects(unused.start('SELECT 1', { clientRequestToken: 'short' }), /clientRequestToken: "short" .*32 to 128/);
  unused.destroy();
});

test('athenaValue converts by type; javaDouble prints as Java does', () => {
  assert.equal(athenaValue('bigint', undefined), null);
  assert.equal(athenaValue('varchar', ''), '');
  assert.equal(athenaValue('bigint', '-12'), -12);
  assert.equal(athenaValue('bigint', '-9223372036854775808'), '-9223372036854775808');
  assert.equal(athenaValue('integer', '7'), 7);
  assert.equal(athenaValue('double', '1.0E-5'), 1e-5);
  assert.equal(athenaValue('real', 'Infinity'), 'Infinity');
  assert.equal(athenaValue('boolean', 'false'), false);
  assert.equal(athenaValue('decimal(38,9)', '1.100000000'), '1.100000000');
  assert.equal(athenaValue('timestamp', '2026-11-21 10:00:00.000'), '2026-11-21 10:00:00');
  assert.equal(athenaValue('timestamp', '2026-11-21 10:00:00.100'), '2026-11-21 10:00:00.1');
  assert.equal(athenaValue('timestamp with time zone', '2026-11-21 10:00:00.000 UTC'), '2026-11-21 10:00:00.000 UTC');
  assert.equal(athenaValue('json', '{"a":1}'), '{"a":1}');
  assert.equal(athenaValue('array', '[1, 2]'), '[1, 2]');
  assert.deepEqual([2, 0.5, 1e7, 1.5e-4, -3, 123456.789, 0].map(javaDouble), ['2.0', '0.5', '1.0E7', '1.5E-4', '-3.0', '123456.789', '0.0']);
});
