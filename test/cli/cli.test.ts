import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { ROOT, runCli, tempDir } from '../support/tmp.ts';

const EVENTS = [
  { type: 'track', event: 'Signed Up', userId: 'u1', messageId: 'm1', receivedAt: '2026-11-20T10:00:00Z', properties: { plan: 'pro, "yearly"' } },
  { type: 'track', event: 'Signed Up', userId: 'u2', messageId: 'm2', receivedAt: '2026-11-21T10:00:00Z' },
  { type: 'page', name: 'Home', anonymousId: 'a1', messageId: 'm3', receivedAt: '2026-11-21T11:00:00Z' },
].map((e) => JSON.stringify(e));

test('ingest from stdin, then query in every format and list tables', async () => {
  const dir = tempDir('cli');
  const lake = `${dir}/lake`;
  const r = await runCli(['ingest', '--lake', lake, '-'], { input: EVENTS.join('\n') + '\nnot json\n' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /read\s+4/);
  assert.match(r.stdout, /written\s+3/);
  assert.match(r.stdout, /dead letters\s+1/);

  const sql = 'SELECT event, count(*) AS n, min(json_extract_string(properties, \'$.plan\')) AS plan FROM tracks GROUP BY 1';
  const json = await runCli(['query', '--lake', lake, '--format', 'json', sql]);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout), [{ event: 'Signed Up', n: 2, plan: 'pro, "yearly"' }]);
  const nd = await runCli(['query', '--lake', lake, '--format', 'ndjson', 'SELECT message_id FROM tracks ORDER BY 1']);
  assert.equal(nd.stdout, '{"message_id":"m1"}\n{"message_id":"m2"}\n');
  const csv = await runCli(['query', '--lake', lake, '--format', 'csv', sql]);
  assert.equal(csv.stdout, 'event,n,plan\r\nSigned Up,2,"pro, ""yearly"""\r\n');
  const table = await runCli(['query', '--lake', lake, sql]);
  assert.match(table.stdout, /│ event +│ +n │ plan +│/);
  assert.match(table.stdout, /1 row\n$/);

  const fromEnv = await runCli(['query', '--format', 'json', 'SELECT count(*) AS n FROM pages'], { env: { TRIBUTARY_LAKE: lake } });
  assert.deepEqual(JSON.parse(fromEnv.stdout), [{ n: 1 }]);

  const tables = await runCli(['tables', '--lake', lake, '--json']);
  assert.equal(tables.code, 0, tables.stderr);
  const info = JSON.parse(tables.stdout);
  const tracks = info.tables.find((t: { name: string }) => t.name === 'tracks');
  assert.deepEqual(tracks.partitionKeys.map((k: { name: string }) => k.name), ['dt']);
  assert.ok(tracks.columns.some((c: { name: string; type: string }) => c.name === 'received_at' && c.type === 'timestamp'));
  assert.deepEqual(tracks.partitions.map((p: { values: string[] }) => p.values), [['2026-11-20'], ['2026-11-21']]);
  assert.equal(tracks.rows, 2);
  const file = tracks.partitions[0].files[0];
  assert.equal(file.rows, 1);
  assert.ok(file.bytes > 0 && file.path.startsWith('tracks/dt=2026-11-20/'));
  const text = await runCli(['tables', '--lake', lake]);
  assert.match(text.stdout, /tracks: 2 rows in 2 files/);
});

test('timestamps are Parquet INT64 millisecond timestamps in UTC, never INT96', async () => {
  const dir = tempDir('cli');
  const lake = `${dir}/lake`;
  await runCli(['ingest', '--lake', lake, '-'], { input: EVENTS.join('\n') });
  const r = await runCli(['query', '--lake', lake, '--format', 'json', `SELECT name, type, logical_type FROM parquet_schema('${lake}/tracks/*/*.parquet') WHERE name IN ('timestamp', 'received_at', 'sent_at', 'original_timestamp') GROUP BY ALL ORDER BY 1`]);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout);
  assert.equal(rows.length, 4);
  for (const row of rows) {
    assert.equal(row.type, 'INT64');
    assert.match(row.logical_type, /MILLIS/);
  }
  const v = await runCli(['query', '--lake', lake, '--format', 'json', "SELECT CAST(received_at AS VARCHAR) AS r FROM tracks WHERE message_id = 'm1'"]);
  assert.deepEqual(JSON.parse(v.stdout), [{ r: '2026-11-20 10:00:00' }]);
});

test('usage errors exit 2 with a message naming the bad value; runtime failures exit 1', async () => {
  const dir = tempDir('cli');
  const cases: Array<[string[], number, RegExp]> = [
    [[], 2, /Commands:/],
    [['frobnicate'], 2, /unknown command "frobnicate"/],
    [['constructor'], 2, /unknown command "constructor"/], // a name every object has is not a command
    [['ingest', '--lake', `${dir}/l`], 2, /no input given/],
    [['ingest', '--lake', `${dir}/l`, '--target-file-size', 'huge', 'x'], 2, /"huge"/],
    [['ingest', '--lake', `${dir}/l`, '--target-file-size', '10', 'x'], 2, /targetFileBytes: 10 is not valid; expected a number from 1024/],
    [['ingest', '--lake', `${dir}/l`, '--partition-by', 'week', 'x'], 2, /"week"/],
    [['ingest', '--lake', `${dir}/l`, '--max-file-age', 'soon', 'x'], 2, /"soon"/],
    [['ingest', '--lake', `${dir}/l`, '--close-after', 'never', 'x'], 2, /--close-after: "never" is not valid; expected a duration/],
    [['ingest', '--bogus-flag', 'x'], 2, /bogus-flag/],
    [['query', '--lake', `${dir}/l`, '--format', 'xml', 'SELECT 1'], 2, /--format: "xml"/],
    [['query', '--lake', `${dir}/l`, 'SELECT 1', 'SELECT 2'], 2, /expected one SQL statement \(quoted\), got 2 arguments/],
    [['ingest', '--lake', `${dir}/l`, `${dir}/missing.ndjson`], 1, /missing\.ndjson/],
    [['query', '--lake', `${dir}/l`, 'SELECT * FROM tracks'], 1, /no table or view named tracks; it has no tables yet/],
    [['query', '--lake', `${dir}/l`, 'SELEC 1'], 1, /syntax error/i],
    [['ingest', '--config', `${dir}/nope.json`, 'x'], 2, /nope\.json/],
  ];
  for (const [args, code, pattern] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, code, `${args.join(' ')} → ${r.code}: ${r.stderr}`);
    assert.match(r.stderr + r.stdout, pattern, args.join(' '));
    assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  }
});

test('tributary.config.json supplies defaults that flags override', async () => {
  const dir = tempDir('cli');
  writeFileSync(`${dir}/tributary.config.json`, JSON.stringify({ lake: 'cfg-lake', partitionBy: 'event,dt' }));
  writeFileSync(`${dir}/e.ndjson`, EVENTS.join('\n'));
  const r = await runCli(['ingest', '--json', 'e.ndjson'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  const t = await runCli(['tables', '--json'], { cwd: dir });
  const tracks = JSON.parse(t.stdout).tables.find((x: { name: string }) => x.name === 'tracks');
  assert.deepEqual(tracks.partitionKeys.map((k: { name: string }) => k.name), ['event', 'dt']);
  assert.match(tracks.partitions[0].location, /^tracks\/event=Signed Up\/dt=/);
  writeFileSync(`${dir}/tributary.config.json`, JSON.stringify({ lake: 'x', colour: 'blue' }));
  const bad = await runCli(['tables'], { cwd: dir });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /"colour"/);
});

test('rows inside each tracks file are ordered by event, then received_at', async () => {
  const dir = tempDir('cli');
  const lake = `${dir}/lake`;
  const { sampleLines } = await import('../../src/sample/generate.ts');
  await runCli(['ingest', '--lake', lake, '-'], { input: [...sampleLines({ count: 20_000, seed: 8 })].join('\n') });
  const { readdirSync } = await import('node:fs');
  const files = readdirSync(`${lake}/tracks`, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.parquet'));
  assert.ok(files.length >= 3);
  for (const f of files) {
    const r = await runCli(['query', '--lake', lake, '--format', 'json', `SELECT count(*) AS bad FROM (SELECT event, received_at, lag(event) OVER w AS pe, lag(received_at) OVER w AS pr FROM read_parquet('${lake}/tracks/${f}', file_row_number=true) WINDOW w AS (ORDER BY file_row_number)) WHERE pe > event OR (pe = event AND pr > received_at)`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [{ bad: 0 }], f);
    const n = await runCli(['query', '--lake', lake, '--format', 'json', `SELECT count(DISTINCT event) AS events FROM read_parquet('${lake}/tracks/${f}')`]);
    assert.ok(JSON.parse(n.stdout)[0].events > 1, 'the check is not vacuous');
  }
});

test('filters on partition columns skip whole files (partition pruning)', async () => {
  const dir = tempDir('cli');
  const lake = `${dir}/lake`;
  const { sampleLines } = await import('../../src/sample/generate.ts');
  await runCli(['ingest', '--lake', lake, '--partition-by', 'event,dt', '-'], { input: [...sampleLines({ count: 5000, seed: 3 })].join('\n') });
  const plan = await runCli(['query', '--lake', lake, '--format', 'json', "EXPLAIN SELECT count(*) FROM tracks WHERE event = 'Order Completed' AND dt = DATE '2026-11-21'"]);
  assert.equal(plan.code, 0, plan.stderr);
  const text = JSON.stringify(JSON.parse(plan.stdout));
  const m = /Scanning Files: (\d+)\/(\d+)/.exec(text);
  assert.ok(m, text);
  assert.equal(Number(m![1]), 1);
  assert.ok(Number(m![2]) >= 9, `the table has many files (${m![2]})`);
});

test('on a terminal, ingest draws a progress line on stderr', async () => {
  const dir = tempDir('cli');
  const { sampleLines } = await import('../../src/sample/generate.ts');
  writeFileSync(`${dir}/e.ndjson`, [...sampleLines({ count: 60_000, seed: 2 })].join('\n'));
  const { execFileSync } = await import('node:child_process');
  // script(1) gives the child a pseudo-terminal, so stderr.isTTY is true.
  const out = execFileSync('script', ['-qec', `${process.execPath} ${ROOT}/bin/tributary.js ingest --lake ${dir}/lake ${dir}/e.ndjson`, '/dev/null'], { encoding: 'utf8' });
  assert.match(out, /read [\d,]+ events, [\d.]+ \w+ of [\d.]+ \w+ \(\d+%\)/);
  assert.match(out, /written\s+60,000/);
});

test('commands on a local lake do not load the AWS SDK; a lake on S3 does', () => {
  const dir = tempDir('no-aws');
  const lake = `${dir}/lake`;
  writeFileSync(`${dir}/e.ndjson`, JSON.stringify({ type: 'track', event: 'E', anonymousId: 'a', receivedAt: '2026-11-20T00:00:00Z' }) + '\n');
  // A module resolve hook that reports every package the CLI process imports, on stderr.
  const hook = `${dir}/hook.mjs`;
  const resolve = 'export async function resolve(s, c, next) { if (!/^(\\.|node:|file:|data:)/.test(s)) process._rawDebug("IMPORT " + s); return next(s, c); }';
  writeFileSync(hook, `import { register } from 'node:module';\nregister('data:text/javascript,' + encodeURIComponent(${JSON.stringify(resolve)}));\n`);
  const packages = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = spawnSync(process.execPath, ['--import', hook, `${ROOT}/bin/tributary.js`, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
    return { code: r.status, imports: [...new Set([...r.stderr.matchAll(/^IMPORT (\S+)/gm)].map((m) => m[1]!))], stderr: r.stderr };
  };
  mkdirSync(`${dir}/history`);
  writeFileSync(`${dir}/history/h.ndjson`, JSON.stringify({ type: 'track', event: 'H', anonymousId: 'b', receivedAt: '2026-11-19T00:00:00Z' }) + '\n');
  for (const args of [['ingest', '--lake', lake, `${dir}/e.ndjson`], ['query', '--lake', lake, 'SELECT count(*) FROM tracks'], ['tables', '--lake', lake], ['compact', 'json', '--from', `${dir}/history`, '--lake', lake]]) {
    const r = packages(args);
    assert.equal(r.code, 0, r.stderr);
    // The hook sees package imports (`tables` reads footers with hyparquet, without DuckDB).
    assert.ok(r.imports.includes(args[0] === 'tables' ? 'hyparquet' : '@duckdb/node-api'), `${args.join(' ')}: the hook sees package imports (${r.imports.join(', ')})`);
    assert.deepEqual(r.imports.filter((p) => p.startsWith('@aws-sdk/')), [], `${args.join(' ')} on a local lake`);
  }
  // An S3 lake loads the S3 client (the command fails later: nothing listens at the endpoint).
  const s3 = packages(['tables', '--lake', 's3://no-such-bucket/lake'], {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9',
    AWS_MAX_ATTEMPTS: '1',
  });
  assert.notEqual(s3.code, 0);
  assert.ok(s3.imports.includes('@aws-sdk/client-s3'), s3.imports.join(', '));
});

test('tributary demo: generates, ingests, prints the A/B table and verifies the lake against what it generated; a second run adds nothing', async () => {
  const dir = tempDir('demo');
  const first = await runCli(['demo', '--lake', `${dir}/lake`, '--events', '5000'], { cwd: dir });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /A\/B test results/);
  assert.match(first.stdout, /experiment_name/);
  const m = /verify: the lake holds the ([\d,]+) generated events exactly \(([\d,]+) found, 0 missing, 0 extra\)/.exec(first.stdout);
  assert.ok(m, first.stdout);
  assert.equal(m[1], m[2]);
  const written = Number(/written ([\d,]+)/.exec(first.stdout)![1]!.replace(/,/g, ''));
  assert.equal(Number(m[1]!.replace(/,/g, '')), written);
  const second = await runCli(['demo', '--lake', `${dir}/lake`, '--events', '5000'], { cwd: dir });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /written 0,/);
  assert.match(second.stdout, /verify: the lake holds/);
});
