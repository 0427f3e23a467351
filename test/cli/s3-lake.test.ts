import assert from 'node:assert/strict';
import { test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { sampleLines } from '../../src/sample/generate.ts';
import { expectedAnswers } from '../support/ground-truth.ts';
import { writeTestInput } from '../support/data.ts';
import { lakeAnswers } from '../support/lake-answers.ts';
import { rerunWithOpenSslLegacyProviderIfNeeded, s3rverBucket, s3rverEnv } from '../support/s3rver.ts';
import { startGlueStandIn } from '../support/glue-standin.ts';
import { runCli, tempDir } from '../support/tmp.ts';

rerunWithOpenSslLegacyProviderIfNeeded(); // s3rver (in this process) needs DES for its listing tokens

test('every command works on an S3 lake (s3rver): ingest, query, tables, merge, idempotent re-ingest', async () => {
  const dir = tempDir('s3lake');
  const { endpoint, bucket } = await s3rverBucket();
  const env = s3rverEnv(endpoint, `${dir}/cache`);
  const lake = `s3://${bucket}/lake`;
  const { files, lines } = writeTestInput(dir, 4000, 61);
  const expected = await expectedAnswers(lines, dir);
  const r = await runCli(['ingest', '--lake', lake, '--json', '--target-file-size', '16KB', ...files], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).written, expected.valid);
  const got = await lakeAnswers(lake, env);
  assert.equal(got.total, expected.valid);
  assert.equal(got.distinctIds, expected.valid);
  assert.deepEqual(got.perEvent, expected.perEvent);
  assert.deepEqual(got.experiments, expected.experiments);
  const tables = await runCli(['tables', '--lake', lake, '--json'], { env });
  assert.equal(tables.code, 0, tables.stderr);
  const info = JSON.parse(tables.stdout);
  assert.equal(info.lake, lake);
  assert.equal(info.tables.reduce((a: number, t: { rows: number }) => a + t.rows, 0), expected.valid);

  const m = await runCli(['compact', 'merge', '--lake', lake, '--json', '--grace', '0s'], { env });
  assert.equal(m.code, 0, m.stderr);
  assert.ok(JSON.parse(m.stdout).merged > 5);
  assert.deepEqual(await lakeAnswers(lake, env), got);
  const again = JSON.parse((await runCli(['ingest', '--lake', lake, '--json', ...files], { env })).stdout);
  assert.deepEqual([again.written, again.deadLettered], [0, 0]);
});

test('an S3 lake registered in Glue (protocol stand-in): ingest, query, verify, delete-users and expire through --catalog glue:<db>', async () => {
  const dir = tempDir('s3glue');
  const { endpoint, bucket } = await s3rverBucket();
  const glue = await startGlueStandIn();
  const env = { ...s3rverEnv(endpoint, `${dir}/cache`), AWS_ENDPOINT_URL_GLUE: glue.endpoint };
  const lake = `s3://${bucket}/warehouse`;
  const { files, lines } = writeTestInput(dir, 2000, 63);
  const expected = await expectedAnswers(lines, dir);
  const args = ['--lake', lake, '--catalog', 'glue:events_db'];
  const r = await runCli(['ingest', ...args, '--json', ...files], { env });
  assert.equal(r.code, 0, r.stderr);
  const got = await lakeAnswers(lake, env, ['--catalog', 'glue:events_db']);
  assert.equal(got.total, expected.valid);
  assert.deepEqual(got.perType, expected.perType);
  // verify and delete-users through S3 and Glue: the swap moves Glue's partition locations.
  const v = await runCli(['verify', ...args, '--json', ...files], { env });
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.equal(JSON.parse(v.stdout).expected, expected.valid);
  const count = async (where: string) => Number(JSON.parse((await runCli(['query', ...args, '--format', 'json', `SELECT (SELECT count(*) FROM tracks${where}) + (SELECT count(*) FROM pages${where}) AS n`], { env })).stdout)[0].n);
  const users = JSON.parse((await runCli(['query', ...args, '--format', 'json', 'SELECT user_id, count(*) AS n FROM tracks WHERE user_id IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1'], { env })).stdout);
  const user = users[0].user_id as string;
  const whereUser = ` WHERE user_id = '${user.replace(/'/g, "''")}'`;
  const [all, mine] = [await count(''), await count(whereUser)];
  assert.ok(mine > 0);
  const d = await runCli(['delete-users', ...args, '--user-id', user, '--json'], { env });
  assert.equal(d.code, 0, d.stderr);
  assert.ok(JSON.parse(d.stdout).partitions > 0);
  assert.equal(await count(whereUser), 0, 'the user\'s rows are gone');
  assert.equal(await count(''), all - mine, 'every other row stays');
  const after = await runCli(['verify', ...args, '--json', ...files], { env });
  assert.equal(after.code, 1);
  assert.ok(JSON.parse(after.stdout).missing >= mine);
  // expire through S3 and Glue: day 1's partitions leave Glue, its objects leave the bucket.
  const day1 = ` WHERE dt = DATE '2026-11-20'`;
  const [left, day1Rows] = [await count(''), await count(day1)];
  assert.ok(day1Rows > 0);
  const e = await runCli(['expire', ...args, '--before', '2026-11-21', '--json'], { env });
  assert.equal(e.code, 0, e.stderr);
  const expired = JSON.parse(e.stdout);
  assert.ok(expired.partitions.length >= 4 && expired.partitions.every((p: { values: string[] }) => p.values[0] === '2026-11-20'));
  assert.equal(expired.garbageDeleted, expired.files);
  assert.equal(await count(day1), 0);
  assert.equal(await count(''), left - day1Rows, 'the other days stay');
  const ls = JSON.parse((await runCli(['catalog', 'ls', ...args, '--json'], { env })).stdout) as Array<{ partitions: Array<{ values: string[] }> }>;
  assert.ok(ls.every((t) => t.partitions.every((p) => p.values[0] !== '2026-11-20')), 'no day-1 partition left in Glue');
  const bad = await runCli(['ingest', '--lake', `${dir}/local`, '--catalog', 'glue:x', ...files], { env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /needs the lake on S3/);
});

test('catalog sync mirrors the embedded catalog into Glue, following compaction moves, idempotently', async () => {
  const dir = tempDir('sync');
  const { endpoint, bucket } = await s3rverBucket();
  const glue = await startGlueStandIn();
  const env = { ...s3rverEnv(endpoint, `${dir}/cache`), AWS_ENDPOINT_URL_GLUE: glue.endpoint };
  const lake = `s3://${bucket}/lake`;
  const { files, lines } = writeTestInput(dir, 1500, 65);
  const expected = await expectedAnswers(lines, dir);
  assert.equal((await runCli(['ingest', '--lake', lake, '--target-file-size', '8KB', ...files], { env })).code, 0);
  const sync = async () => {
    const r = await runCli(['catalog', 'sync', '--lake', lake, '--glue-database', 'mirror', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { tables: number; added: number; moved: number; dropped: number };
  };
  const first = await sync();
  assert.equal(first.tables, 6);
  assert.ok(first.added >= 18);
  assert.equal(first.moved, 0);
  const merge = await runCli(['compact', 'merge', '--lake', lake, '--grace', '1h', '--json'], { env });
  assert.equal(merge.code, 0, merge.stderr);
  const merged = JSON.parse(merge.stdout).merged as number;
  assert.ok(merged > 0, 'compaction moved partitions');
  const second = await sync();
  assert.deepEqual([second.added, second.moved], [0, merged]);
  assert.deepEqual(await sync(), { tables: 6, added: 0, moved: 0, dropped: 0 });
  const ls = async (catalog: string) => JSON.parse((await runCli(['catalog', 'ls', '--lake', lake, '--catalog', catalog, '--json'], { env })).stdout) as Array<{ table: string; partitions: Array<{ values: string[]; location: string }> }>;
  const strip = (x: Awaited<ReturnType<typeof ls>>) => x.map((t) => [t.table, t.partitions.map((p) => [p.values, p.location])]);
  assert.deepEqual(strip(await ls('glue:mirror')), strip(await ls('embedded')));
  const viaGlue = await lakeAnswers(lake, env, ['--catalog', 'glue:mirror']);
  assert.equal(viaGlue.total, expected.valid);
  assert.deepEqual(viaGlue.perEvent, expected.perEvent);
  // After expiry, sync leaves Glue's partitions alone unless told to prune them.
  const e = await runCli(['expire', '--lake', lake, '--before', '2026-11-21', '--json'], { env });
  assert.equal(e.code, 0, e.stderr);
  const dropped = JSON.parse(e.stdout).partitions.length as number;
  assert.ok(dropped >= 4);
  assert.deepEqual(await sync(), { tables: 6, added: 0, moved: 0, dropped: 0 });
  const pruned = await runCli(['catalog', 'sync', '--lake', lake, '--glue-database', 'mirror', '--prune', '--json'], { env });
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.equal(JSON.parse(pruned.stdout).dropped, dropped);
  assert.deepEqual(strip(await ls('glue:mirror')), strip(await ls('embedded')));
});

test('query over S3 fetches only the tables it reads into the cache; --verbose reports misses, then hits; the cap evicts', async () => {
  const dir = tempDir('s3cache');
  const { endpoint, bucket } = await s3rverBucket();
  const env = s3rverEnv(endpoint, `${dir}/default-cache`);
  const lake = `s3://${bucket}/lake`;
  const { files, lines } = writeTestInput(dir, 2000, 67);
  const expected = await expectedAnswers(lines, dir);
  assert.equal((await runCli(['ingest', '--lake', lake, '--target-file-size', '16KB', ...files], { env })).code, 0);
  const query = (sql: string, ...extra: string[]) => runCli(['query', '--lake', lake, '--verbose', '--format', 'json', ...extra, sql], { env });
  const perEvent = 'SELECT event, count(*) AS n FROM tracks GROUP BY 1 ORDER BY 1';
  const cold = await query(perEvent, '--cache-dir', `${dir}/c1`);
  assert.equal(cold.code, 0, cold.stderr);
  const m = /^cache: 0 hits, (\d+) misses, ([\d.]+ [KM]iB) fetched; .*c1 holds \2 of 10\.0 GiB$/m.exec(cold.stderr);
  assert.ok(m, cold.stderr);
  const tracksFiles = Number(m[1]);
  const tables = JSON.parse((await runCli(['tables', '--lake', lake, '--json'], { env })).stdout) as { tables: Array<{ name: string; files: number }> };
  assert.equal(tracksFiles, tables.tables.find((t) => t.name === 'tracks')!.files, 'only the files of tracks');
  assert.ok(tables.tables.reduce((a, t) => a + t.files, 0) > tracksFiles);
  assert.deepEqual(Object.fromEntries((JSON.parse(cold.stdout) as Array<{ event: string; n: number }>).map((r) => [r.event, r.n])), expected.perEvent);
  const warm = await query(perEvent, '--cache-dir', `${dir}/c1`);
  assert.equal(warm.stdout, cold.stdout);
  assert.match(warm.stderr, new RegExp(`^cache: ${tracksFiles} hits, 0 misses, 0 B fetched;`, 'm'));
  // The view over tracks binds tracks too.
  const view = await query('SELECT count(*) AS n FROM experiment_results', '--cache-dir', `${dir}/c1`);
  assert.match(view.stderr, new RegExp(`^cache: ${tracksFiles} hits, 0 misses`, 'm'));

  // A cap of one byte: the files a query reads are still kept for it; the next query evicts them.
  const tiny = ['--cache-dir', `${dir}/c2`, '--cache-max-bytes', '1'];
  const first = await query(perEvent, ...tiny);
  assert.equal(first.stdout, cold.stdout);
  assert.match(first.stderr, /^cache: 0 hits, \d+ misses, .* fetched; /m);
  const second = await query('SELECT count(*) AS n FROM pages', ...tiny);
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(JSON.parse(second.stdout), [{ n: expected.perType.page }]);
  assert.match(second.stderr, new RegExp(`evicted ${tracksFiles} \\(`));

  const bad = await query(perEvent, '--cache-max-bytes', 'lots');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--cache-max-bytes.*"lots"/);
  const local = await runCli(['query', '--lake', `${dir}/nolake`, '--verbose', 'SELECT 1 AS x']);
  assert.match(local.stderr, /cache: not used/);
});

test('query over S3 fetches only the columns a statement names; --whole-files fetches the files; same answers', async () => {
  const dir = tempDir('s3cols');
  const { endpoint, bucket } = await s3rverBucket();
  const env = s3rverEnv(endpoint, `${dir}/default-cache`);
  const lake = `s3://${bucket}/lake`;
  // Events of ~1 KB, so that files are big enough (over 1 MiB) for a column to be a small part of them.
  const lines = [...sampleLines({ count: 60_000, seed: 71, padToBytes: 1000 })];
  writeFileSync(`${dir}/in.ndjson`, lines.join('\n') + '\n');
  const expected = await expectedAnswers(lines, dir);
  assert.equal((await runCli(['ingest', '--lake', lake, `${dir}/in.ndjson`], { env })).code, 0);
  const perEvent = 'SELECT event, count(*) AS n FROM tracks GROUP BY 1 ORDER BY 1';
  const fetched = (stderr: string) => {
    const m = /^cache: \d+ hits?, \d+ miss(?:es)?, ([\d.]+) (B|KiB|MiB) fetched/m.exec(stderr);
    assert.ok(m, stderr);
    return Number(m[1]) * { B: 1, KiB: 1024, MiB: 1024 ** 2 }[m[2] as 'B' | 'KiB' | 'MiB'];
  };
  const some = await runCli(['query', '--lake', lake, '--verbose', '--format', 'json', '--cache-dir', `${dir}/c1`, perEvent], { env });
  const whole = await runCli(['query', '--lake', lake, '--verbose', '--format', 'json', '--cache-dir', `${dir}/c2`, '--whole-files', perEvent], { env });
  assert.equal(some.code, 0, some.stderr);
  assert.equal(whole.code, 0, whole.stderr);
  assert.equal(some.stdout, whole.stdout);
  assert.deepEqual(Object.fromEntries((JSON.parse(some.stdout) as Array<{ event: string; n: number }>).map((r) => [r.event, r.n])), expected.perEvent);
  assert.ok(fetched(some.stderr) * 3 < fetched(whole.stderr), `only the event column: ${some.stderr} against ${whole.stderr}`);
  const bad = await runCli(['query', '--live', 'http://127.0.0.1:1', '--write-key', 'k', '--whole-files', 'SELECT 1'], { env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--whole-files apply to --lake queries/);
});
