/**
 * The Kinesis consumer as users run it: `tributary ingest --kinesis` child processes against a
 * kinesalite in this process, killed at random moments, resharded under them, two at once.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { rng, sampleLines } from '../../src/sample/generate.ts';
import { aggregate } from '../../src/source/kpl.ts';
import { expectedAnswers } from '../support/ground-truth.ts';
import { createStream, putLines, splitShard, startKinesalite, type Kinesalite } from '../support/kinesalite.ts';
import { assertGroundTruth, lakeAnswers } from '../support/lake-answers.ts';
import { runCli, spawnCli, tempDir } from '../support/tmp.ts';

let k: Kinesalite;
before(async () => {
  k = await startKinesalite();
});
after(async () => {
  await k.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ENV = { ...process.env, AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local', AWS_REGION: 'us-east-1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

function consumerArgs(lake: string, stream: string, name: string): string[] {
  return ['ingest', '--kinesis', stream, '--endpoint', k.endpoint, '--lake', lake, '--json', '--consumer-name', name,
    '--max-file-age', '400ms', '--target-file-size', '64KB', '--lease-timeout', '2s', '--shard-sync', '300ms'];
}

/** Payloads of `lines`: NDJSON records of 1 to 12 lines, and every 9th a KPL aggregate. */
function payloadsOf(lines: string[], seed: number): Array<string | Uint8Array> {
  const r = rng(seed);
  const out: Array<string | Uint8Array> = [];
  for (let i = 0, n = 0; i < lines.length; n++) {
    const size = 1 + Math.floor(r() * 12);
    const part = lines.slice(i, i + size);
    i += size;
    // As the KPL: an aggregate holds records bound for one shard (here: they share putLines' partition key).
    out.push(n % 9 === 8 ? aggregate(part.map((l) => ({ partitionKey: `pk-${n}`, data: Buffer.from(l) }))) : part.join('\n'));
  }
  return out;
}

interface Checkpoint {
  sequenceNumber: string;
  resume: 'AT' | 'AFTER';
  closed: boolean;
  by: string;
}

function checkpoints(lake: string, stream: string): Map<string, Checkpoint> {
  const dir = `${lake}/_tributary/kinesis/kinesis-${stream}/checkpoints`;
  const out = new Map<string, Checkpoint>();
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir)) {
    try {
      out.set(f.replace(/\.json$/, ''), JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')));
    } catch {
      // being replaced
    }
  }
  return out;
}

/** True when every shard's checkpoint is past the last record put into it. */
function allCommitted(lake: string, stream: string, lastSeq: Map<string, string>): boolean {
  const cps = checkpoints(lake, stream);
  for (const [shard, seq] of lastSeq) {
    const cp = cps.get(shard);
    if (cp === undefined) return false;
    if (!cp.closed && !(cp.resume === 'AFTER' && BigInt(cp.sequenceNumber) >= BigInt(seq))) return false;
  }
  return true;
}

function lastSequences(placed: Array<{ shardId: string; sequenceNumber: string }>, into = new Map<string, string>()): Map<string, string> {
  for (const p of placed) if (BigInt(into.get(p.shardId) ?? '0') < BigInt(p.sequenceNumber)) into.set(p.shardId, p.sequenceNumber);
  return into;
}

function start(args: string[]): { child: ChildProcess; stdout: () => string; stderr: () => string; exited: Promise<number | null> } {
  const child = spawnCli(args, { env: ENV });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function waitFor(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function countFiles(lake: string): number {
  if (!existsSync(lake)) return 0;
  // The tables only: the spool directories under _tributary come and go while a consumer runs.
  let n = 0;
  for (const t of readdirSync(lake)) if (!t.startsWith('_')) n += readdirSync(`${lake}/${t}`, { recursive: true, encoding: 'utf8' }).filter((p) => p.endsWith('.parquet')).length;
  return n;
}

function deadLetterPositions(lake: string): string[] {
  const root = `${lake}/_deadletter`;
  if (!existsSync(root)) return [];
  const out: string[] = [];
  for (const f of readdirSync(root, { recursive: true, encoding: 'utf8' })) {
    if (!f.endsWith('.ndjson')) continue;
    for (const line of readFileSync(`${root}/${f}`, 'utf8').split('\n')) {
      if (!line) continue;
      const d = JSON.parse(line) as { shard: string; position: string };
      out.push(`${d.shard}:${d.position}`);
    }
  }
  return out;
}

test('crash test: 200k events on 4 shards, a SplitShard mid-run, the consumer SIGKILLed at 10+ random moments: every event exactly once', async () => {
  const dir = tempDir('kin-crash');
  const lake = `${dir}/lake`;
  const client = k.client();
  await createStream(client, 'crash', 4);
  const lines = [...sampleLines({ count: 200_000, seed: 77, invalidRate: 0.01, batchRate: 0.02 })];
  const half = Math.floor(lines.length / 2);
  const lastSeq = lastSequences(await putLines(client, 'crash', payloadsOf(lines.slice(0, half), 1)));
  const expected = await expectedAnswers(lines, dir);

  const r = rng(4242);
  let kills = 0;
  let split = false;
  for (let round = 0; kills < 10 && round < 30; round++) {
    const c = start(consumerArgs(lake, 'crash', `crash-${round}`));
    // Once this consumer commits (not after a fixed time: a loaded machine boots slowly), then at a random
    // moment within the next 1.5 s: flushes and commits run every few hundred ms, so kills land amid them.
    const before = countFiles(lake);
    for (const end = Date.now() + 120_000; Date.now() < end && c.child.exitCode === null && countFiles(lake) <= before; ) await sleep(50);
    await Promise.race([sleep(r() * 1_500), c.exited]);
    if (c.child.exitCode !== null) assert.fail(`the consumer exited by itself (${c.child.exitCode}): ${c.stderr()}`);
    c.child.kill('SIGKILL');
    await c.exited;
    kills++;
    if (!split && kills === 3) {
      // Reshard while no consumer runs, then put the second half: it lands in the children too.
      await splitShard(client, 'crash', 'shardId-000000000001');
      lastSequences(await putLines(client, 'crash', payloadsOf(lines.slice(half), 2)), lastSeq);
      split = true;
    }
  }
  assert.ok(kills >= 10 && split);

  const final = start(consumerArgs(lake, 'crash', 'final'));
  // Earlier consumers may have committed everything already: wait until this one runs (its signal
  // handlers are installed) before stopping it, or SIGTERM would find a process still loading.
  await waitFor('the final consumer running', () => / consuming as /.test(final.stderr()), 120_000).catch((err) => {
    throw new Error(`${err.message}\n${final.stderr()}`);
  });
  await waitFor('every shard committed', () => allCommitted(lake, 'crash', lastSeq), 300_000).catch((err) => {
    throw new Error(`${err.message}\n${final.stderr()}`);
  });
  final.child.kill('SIGTERM');
  assert.equal(await final.exited, 0, final.stderr());
  const stats = JSON.parse(final.stdout()) as { read: number; written: number };
  assert.ok(stats.written < expected.valid, 'the final run did not start from scratch');

  assert.equal(checkpoints(lake, 'crash').get('shardId-000000000001')?.closed, true, 'the split parent was read to its end and closed');
  assertGroundTruth(await lakeAnswers(lake), expected);
  const dls = deadLetterPositions(lake);
  assert.equal(dls.length, expected.invalid, 'every invalid event dead-lettered');
  assert.equal(new Set(dls).size, dls.length, 'none twice');
});

test('two consumers share 4 shards; when one dies the other takes its shards over; the result is exact', async () => {
  const dir = tempDir('kin-two');
  const lake = `${dir}/lake`;
  const client = k.client();
  await createStream(client, 'two', 4);
  const lines = [...sampleLines({ count: 40_000, seed: 78, invalidRate: 0.01, batchRate: 0.02 })];
  const expected = await expectedAnswers(lines, dir);
  const lastSeq = new Map<string, string>();

  const a = start(consumerArgs(lake, 'two', 'alpha'));
  const b = start(consumerArgs(lake, 'two', 'bravo'));
  // Events keep coming while both run; both make progress: each checkpoints shards it holds.
  const writers = () => new Set([...checkpoints(lake, 'two').values()].map((c) => c.by.split('#')[0]));
  for (let i = 0; i < 20_000; i += 1_000) {
    lastSequences(await putLines(client, 'two', payloadsOf(lines.slice(i, i + 1_000), 3 + i)), lastSeq);
    await sleep(400);
  }
  await waitFor(`both consumers checkpointing (${[...writers()]})`, () => writers().has('alpha') && writers().has('bravo'), 60_000).catch((err) => {
    throw new Error(`${err.message}\nalpha: ${a.stderr()}\nbravo: ${b.stderr()}`);
  });

  a.child.kill('SIGKILL');
  await a.exited;
  const killedAt = Date.now();
  lastSequences(await putLines(client, 'two', payloadsOf(lines.slice(20_000), 4)), lastSeq);
  await waitFor('bravo committing everything', () => allCommitted(lake, 'two', lastSeq), 120_000);
  const tookOver = Date.now() - killedAt;
  assert.match(b.stderr(), /took over shardId-/, 'bravo says it took shards over');
  b.child.kill('SIGTERM');
  assert.equal(await b.exited, 0, b.stderr());
  process.stderr.write(`# take-over and catch-up took ${tookOver} ms (lease timeout 2 s)\n`);

  assertGroundTruth(await lakeAnswers(lake), expected);
  const dls = deadLetterPositions(lake);
  assert.equal(dls.length, expected.invalid);
  assert.equal(new Set(dls).size, dls.length);
});

test('configuration errors give one clear line and exit 2', async () => {
  const lake = `${tempDir('kin-cfg')}/lake`;
  const unknown = await runCli(['ingest', '--kinesis', 'no-such-stream', '--endpoint', k.endpoint, '--lake', lake], { env: ENV });
  assert.equal(unknown.code, 2, unknown.stderr);
  assert.match(unknown.stderr, /stream "no-such-stream" does not exist/);
  const unreachable = await runCli(['ingest', '--kinesis', 's', '--endpoint', 'http://127.0.0.1:9', '--lake', lake], { env: ENV });
  assert.equal(unreachable.code, 2, unreachable.stderr);
  assert.match(unreachable.stderr, /cannot reach Kinesis at http:\/\/127\.0\.0\.1:9/);
  const region = await runCli(['ingest', '--kinesis', 's', '--region', 'mars', '--lake', lake], { env: ENV });
  assert.equal(region.code, 2);
  assert.match(region.stderr, /--region "mars"/);
  const start = await runCli(['ingest', '--kinesis', 's', '--start', 'yesterday', '--lake', lake], { env: ENV });
  assert.equal(start.code, 2);
  assert.match(start.stderr, /--start: "yesterday" is not valid/);
  const noCreds = await runCli(['ingest', '--kinesis', 's', '--endpoint', k.endpoint, '--lake', lake], {
    env: { ...ENV, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_PROFILE: '', AWS_EC2_METADATA_DISABLED: 'true', AWS_SHARED_CREDENTIALS_FILE: `${lake}-none`, AWS_CONFIG_FILE: `${lake}-none` },
  });
  assert.equal(noCreds.code, 2, noCreds.stderr);
  assert.match(noCreds.stderr, /no AWS credentials for Kinesis/);
  for (const r of [unknown, unreachable, region, start, noCreds]) assert.ok(r.stderr.trim().split('\n').length <= 2, `short: ${r.stderr}`);
});
