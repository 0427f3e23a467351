import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { test } from 'node:test';
import { cliQuery } from '../support/lake-answers.ts';
import { runCli, spawnCli, tempDir } from '../support/tmp.ts';

/** Starts `tributary dev` on a free port; resolves with its URL once it listens. */
async function startDev(lake: string, extra: string[] = []): Promise<{ child: ChildProcess; url: string; exited: Promise<number | null>; out: () => string }> {
  const child = spawnCli(['dev', '--lake', lake, '--port', '0', '--write-key', 'wk', ...extra]);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  for (let i = 0; i < 200; i++) {
    const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
    if (m) return { child, url: m[1]!, exited, out: () => out };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`dev did not start: ${out}`);
}

const auth = { authorization: `Basic ${Buffer.from('wk:').toString('base64')}`, 'content-type': 'application/json' };
const event = (id: string, i: number) => ({ type: 'track', event: i % 4 === 0 ? 'Experiment Clicked' : 'Experiment Viewed', anonymousId: `a${i % 37}`, messageId: id, properties: { experimentName: 'Hero', variationName: i % 2 ? 'A' : 'B' } });

test('query --live against a running dev: the same answers as the lake once flushed, and --watch redraws', async () => {
  const dir = tempDir('dev');
  const dev = await startDev(`${dir}/lake`);
  const batch = Array.from({ length: 40 }, (_, i) => event(`m${i}`, i));
  const res = await fetch(`${dev.url}/v1/batch`, { method: 'POST', headers: auth, body: JSON.stringify({ batch }) });
  assert.equal(res.status, 200);
  // Live: visible at once, though the 15-minute time cap has not flushed anything.
  let rows: Array<Record<string, unknown>> = [];
  for (let i = 0; i < 50; i++) {
    const r = await runCli(['query', '--live', dev.url, '--write-key', 'wk', '--format', 'json', 'SELECT * FROM experiment_results']);
    assert.equal(r.code, 0, r.stderr);
    rows = JSON.parse(r.stdout);
    if (rows.length === 2 && (rows[0]!.total_views as number) + (rows[1]!.total_views as number) === 30) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(rows.map((r) => [r.variation_name, r.total_views, r.total_clicks]), [['A', 20, 0], ['B', 10, 10]]);
  const bad = await runCli(['query', '--live', dev.url, '--write-key', 'nope', 'SELECT 1']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /write key/);
  const watch = spawnCli(['query', '--live', dev.url, '--write-key', 'wk', '--watch', '0.3', 'SELECT count(*) AS n FROM tracks']);
  let w = '';
  watch.stdout!.on('data', (d) => (w += d));
  const watchExit = new Promise((r) => watch.on('exit', r));
  for (let i = 0; i < 100 && (w.match(/Every 0\.3s/g) ?? []).length < 3; i++) await new Promise((r) => setTimeout(r, 100));
  watch.kill('SIGINT');
  assert.equal(await watchExit, 0);
  assert.ok((w.match(/Every 0\.3s/g) ?? []).length >= 3, w);
  assert.match(w, /│ +40 │/);
  dev.child.kill('SIGTERM');
  assert.equal(await dev.exited, 0, dev.out());
  assert.deepEqual(await cliQuery(`${dir}/lake`, 'SELECT variation_name, total_views, total_clicks FROM experiment_results'), [
    { variation_name: 'A', total_views: 20, total_clicks: 0 },
    { variation_name: 'B', total_views: 10, total_clicks: 10 },
  ]);
});

test('dev SIGKILLed at random moments loses no event answered 200 and duplicates none', async () => {
  const dir = tempDir('devkill');
  const lake = `${dir}/lake`;
  const acked = new Set<string>();
  let n = 0;
  for (let round = 0; round < 4; round++) {
    const dev = await startDev(lake, ['--max-file-age', '300ms', '--target-file-size', '8KB']);
    const until = Date.now() + 700 + Math.random() * 900;
    const senders = [0, 1, 2].map(async () => {
      while (Date.now() < until || round === 3) {
        const ids = Array.from({ length: 15 }, () => `r${round}-${n++}`);
        try {
          const res = await fetch(`${dev.url}/v1/batch`, { method: 'POST', headers: auth, body: JSON.stringify({ batch: ids.map((id, i) => event(id, i)) }) });
          if (res.status === 200) for (const id of ids) acked.add(id);
        } catch {
          break; // the process is gone
        }
        if (round === 3 && Date.now() > until) break;
      }
    });
    if (round < 3) {
      await new Promise((r) => setTimeout(r, until - Date.now() - 100));
      dev.child.kill('SIGKILL');
      await Promise.all(senders);
      await dev.exited;
    } else {
      await Promise.all(senders);
      dev.child.kill('SIGTERM');
      assert.equal(await dev.exited, 0, dev.out());
    }
  }
  assert.ok(acked.size > 300, `events were acknowledged (${acked.size})`);
  const rows = await cliQuery(lake, 'SELECT message_id FROM tracks');
  const ids = rows.map((r) => r.message_id as string);
  assert.equal(new Set(ids).size, ids.length, 'no event twice');
  const have = new Set(ids);
  const lost = [...acked].filter((id) => !have.has(id));
  assert.deepEqual(lost.slice(0, 5), [], `${lost.length} acknowledged events missing`);
});

test('dev --kinesis: the collector puts to the stream (200 once Kinesis accepted), live queries see the rows, SIGTERM commits them', async () => {
  const { startKinesalite, createStream } = await import('../support/kinesalite.ts');
  const k = await startKinesalite();
  try {
    await createStream(k.client(), 'dev-stream', 2);
    const dir = tempDir('dev-kin');
    const env = { AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local', AWS_REGION: 'us-east-1' };
    const child = spawnCli(['dev', '--lake', `${dir}/lake`, '--port', '0', '--write-key', 'wk', '--kinesis', 'dev-stream', '--endpoint', k.endpoint, '--shard-sync', '300ms'], { env });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    let url = '';
    for (let i = 0; i < 400 && url === ''; i++) {
      url = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1] ?? '';
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(url, `dev did not start: ${out}`);
    assert.match(out, /Kinesis stream dev-stream/);
    const batch = Array.from({ length: 40 }, (_, i) => event(`k${i}`, i));
    const res = await fetch(`${url}/v1/batch`, { method: 'POST', headers: auth, body: JSON.stringify({ batch }) });
    assert.equal(res.status, 200);
    let rows: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 300; i++) {
      const r = await runCli(['query', '--live', url, '--write-key', 'wk', '--format', 'json', 'SELECT count(*) AS n FROM tracks']);
      assert.equal(r.code, 0, r.stderr);
      rows = JSON.parse(r.stdout);
      if (rows[0]!.n === 40) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(rows[0]!.n, 40, 'the 40 events are live through Kinesis');
    child.kill('SIGTERM');
    assert.equal(await exited, 0, out);
    assert.deepEqual(await cliQuery(`${dir}/lake`, 'SELECT variation_name, total_views, total_clicks FROM experiment_results'), [
      { variation_name: 'A', total_views: 20, total_clicks: 0 },
      { variation_name: 'B', total_views: 10, total_clicks: 10 },
    ]);
  } finally {
    await k.stop();
  }
});
