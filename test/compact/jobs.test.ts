import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { sampleLines } from '../../src/sample/generate.ts';
import { cliQuery } from '../support/lake-answers.ts';
import { runCli, spawnCli, tempDir } from '../support/tmp.ts';

test('jobs from tributary.jobs.json: list, run a backfill, a merge, an erasure and a retention by name, unknown names refused', async () => {
  const dir = tempDir('jobs');
  mkdirSync(`${dir}/raw`);
  writeFileSync(`${dir}/raw/a.ndjson`, [...sampleLines({ count: 3000, seed: 51 })].join('\n'));
  writeFileSync(
    `${dir}/tributary.jobs.json`,
    JSON.stringify({
      jobs: [
        { name: 'backfill', kind: 'json', options: { from: './raw', targetFileSize: '8KB' } },
        { name: 'nightly-merge', kind: 'merge', schedule: '0 3 * * *', options: { grace: '0s' } },
        { name: 'erasures', kind: 'delete-users', schedule: '@daily', options: { idsFile: './erasures.txt' } },
        // A retention ending mid-way through 2026-11-21, whatever day the test runs on: day 1 (11-20) expires.
        { name: 'retention', kind: 'expire', schedule: '@daily', options: { olderThan: `${Math.floor((Date.now() - Date.UTC(2026, 10, 21, 12)) / 3_600_000)}h` } },
      ],
    }),
  );
  const list = await runCli(['jobs', 'list'], { cwd: dir });
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^backfill\t\(manual\)/m);
  assert.match(list.stdout, /^nightly-merge\t0 3 \* \* \*\tnext \d{4}-\d\d-\d\dT03:00:00.000Z/m);
  const b = await runCli(['jobs', 'run', 'backfill'], { cwd: dir });
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout, /backfill: read 3000, written 3000/);
  const m = await runCli(['jobs', 'run', 'nightly-merge'], { cwd: dir });
  assert.match(m.stdout, /nightly-merge: merged \d+ partitions/);
  const [n] = await cliQuery(`${dir}/lake`, 'SELECT count(*) AS n FROM tracks');
  assert.ok((n!.n as number) > 1000);
  const again = await runCli(['jobs', 'run', 'backfill'], { cwd: dir });
  assert.match(again.stdout, /written 0, dead letters 0, already there 3000/);
  // The erasure job reads its ids file at each run: two users' rows go, and a second run finds nothing.
  const users = [...sampleLines({ count: 3000, seed: 51 })].map((l) => JSON.parse(l) as { userId?: string }).filter((e) => e.userId !== undefined);
  const [u1, u2] = [...new Set(users.map((e) => e.userId!))];
  const theirs = users.filter((e) => e.userId === u1 || e.userId === u2).length;
  const before = (await cliQuery(`${dir}/lake`, `SELECT (SELECT count(*) FROM tracks) + (SELECT count(*) FROM pages) + (SELECT count(*) FROM identifies) + (SELECT count(*) FROM screens) + (SELECT count(*) FROM groups) + (SELECT count(*) FROM aliases) AS n`))[0]!.n as number;
  writeFileSync(`${dir}/erasures.txt`, `user:${u1}\n${u2}\n`);
  const e = await runCli(['jobs', 'run', 'erasures'], { cwd: dir });
  assert.equal(e.code, 0, e.stderr);
  assert.match(e.stdout, new RegExp(`erasures: deleted ${theirs} rows`));
  const after = (await cliQuery(`${dir}/lake`, `SELECT (SELECT count(*) FROM tracks) + (SELECT count(*) FROM pages) + (SELECT count(*) FROM identifies) + (SELECT count(*) FROM screens) + (SELECT count(*) FROM groups) + (SELECT count(*) FROM aliases) AS n`))[0]!.n as number;
  assert.equal(after, before - theirs);
  assert.match((await runCli(['jobs', 'run', 'erasures'], { cwd: dir })).stdout, /erasures: deleted 0 rows/);
  // The retention job drops day 1: exactly its rows (by the raw lines) go, a second run finds nothing.
  const day1 = [...sampleLines({ count: 3000, seed: 51 })].map((l) => JSON.parse(l) as { userId?: string; receivedAt: string }).filter((ev) => ev.receivedAt.startsWith('2026-11-20') && ev.userId !== u1 && ev.userId !== u2).length;
  const r = await runCli(['jobs', 'run', 'retention'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /retention: expired 6 partitions before 2026-11-21T12:/);
  const kept = (await cliQuery(`${dir}/lake`, `SELECT (SELECT count(*) FROM tracks) + (SELECT count(*) FROM pages) + (SELECT count(*) FROM identifies) + (SELECT count(*) FROM screens) + (SELECT count(*) FROM groups) + (SELECT count(*) FROM aliases) AS n`))[0]!.n as number;
  assert.equal(kept, after - day1);
  assert.match((await runCli(['jobs', 'run', 'retention'], { cwd: dir })).stdout, /retention: expired 0 partitions/);
  const bad = await runCli(['jobs', 'run', 'nope'], { cwd: dir });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /no job named "nope"; defined: backfill, nightly-merge, erasures, retention/);
});

test('two schedulers never run the same job at once', async () => {
  const dir = tempDir('sched');
  mkdirSync(`${dir}/jobs`);
  const log = `${dir}/runs.log`;
  writeFileSync(
    `${dir}/jobs/slow.mts`,
    `import { appendFileSync } from 'node:fs';
     export default {
       name: 'slow',
       schedule: '@every 1s',
       async run() {
         const start = Date.now();
         await new Promise((r) => setTimeout(r, 1300));
         appendFileSync(${JSON.stringify(log)}, start + ' ' + Date.now() + ' ' + process.pid + '\\n');
         return 'slept';
       },
     };`,
  );
  const a = spawnCli(['jobs', 'schedule', '--lake', `${dir}/lake`], { cwd: dir });
  const b = spawnCli(['jobs', 'schedule', '--lake', `${dir}/lake`], { cwd: dir });
  let out = '';
  const exits = [a, b].map((c) => new Promise((r) => c.on('exit', r)));
  for (const c of [a, b]) {
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (out += d));
  }
  // Until three runs are logged (not a fixed time: a loaded machine starts the CLI slowly).
  const logged = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').length : 0);
  for (const end = Date.now() + 180_000; logged() < 3 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 100));
  a.kill('SIGTERM');
  b.kill('SIGTERM');
  assert.deepEqual(await Promise.all(exits), [0, 0]);
  const runs = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number) as [number, number, number]).sort((x, y) => x[0] - y[0]);
  assert.ok(runs.length >= 3, `the job ran several times (${runs.length}): ${out}`);
  for (let i = 1; i < runs.length; i++) assert.ok(runs[i]![0] >= runs[i - 1]![1], `runs ${i - 1} and ${i} overlap`);
  assert.match(out, /slow: skipped, job slow is running elsewhere/);
});

test("a json job writes the lake the config file describes: its table names and promoted keys", async () => {
  const dir = tempDir('jobs-config');
  mkdirSync(`${dir}/raw`);
  const lines = [...sampleLines({ count: 2000, seed: 57 })];
  writeFileSync(`${dir}/raw/a.ndjson`, lines.join('\n'));
  writeFileSync(`${dir}/tributary.config.json`, JSON.stringify({ tables: { track: 'track_events' }, promote: { track: { revenue: 'double' } } }));
  writeFileSync(`${dir}/tributary.jobs.json`, JSON.stringify({ jobs: [{ name: 'backfill', kind: 'json', options: { from: './raw' } }] }));
  const b = await runCli(['jobs', 'run', 'backfill'], { cwd: dir });
  assert.equal(b.code, 0, b.stderr);
  const revenues = lines.map((l) => JSON.parse(l) as { type?: string; properties?: { revenue?: unknown } }).filter((e) => e.type === 'track' && typeof e.properties?.revenue === 'number');
  assert.ok(revenues.length > 50, `${revenues.length} events with a revenue`);
  const [row] = await cliQuery(`${dir}/lake`, 'SELECT count(revenue) AS n, sum(revenue) AS s FROM track_events');
  assert.equal(row!.n, revenues.length);
  assert.ok(Math.abs((row!.s as number) - revenues.reduce((a, e) => a + (e.properties!.revenue as number), 0)) < 1e-6);
  assert.equal(existsSync(`${dir}/lake/tracks`), false, 'no table under the default name');
});
