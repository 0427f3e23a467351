/**
 * `npm run bench`: end-to-end ingest of 1 M generated events of ~1 KB (events/s, MB/s, peak RSS,
 * output bytes and files), against a parquetjs-lite baseline measured in the same run. Two inputs of
 * the same events: in arrival order (receivedAt never decreasing, as a stream or the collector
 * delivers them: receivedAt is stamped on arrival) and with receivedAt in no order (a worst case:
 * every spool must be sorted before its write). Appends the figures to bench/RESULTS.md. Timing is
 * never asserted anywhere.
 */
import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, appendFileSync } from 'node:fs';
import { once } from 'node:events';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sampleLines } from '../src/sample/generate.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WORK = path.join(HERE, '.work');
const EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const BASELINE_EVENTS = Math.min(EVENTS, Number(process.env.BENCH_BASELINE_EVENTS ?? 200_000));
mkdirSync(WORK, { recursive: true });

/** The benchmark's input file, generated once (same seed, so the same events in both orders). */
async function inputFile(order: 'arrival' | 'random'): Promise<string> {
  const file = path.join(WORK, `events-${EVENTS}${order === 'arrival' ? '-arrival' : ''}.ndjson`);
  if (!existsSync(file)) {
    process.stderr.write(`generating ${EVENTS} events (receivedAt in ${order} order) into ${file}\n`);
    const out = createWriteStream(file + '.tmp');
    for (const l of sampleLines({ count: EVENTS, seed: 2026, padToBytes: 1000, order })) if (!out.write(l + '\n')) await once(out, 'drain');
    out.end();
    await once(out, 'finish');
    renameSync(file + '.tmp', file);
  }
  return file;
}
const input = await inputFile('arrival');
const shuffled = await inputFile('random');
const inputBytes = statSync(input).size;

function child(script: string, args: string[]): Record<string, number> {
  const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(HERE, script), ...args], { encoding: 'utf8', maxBuffer: 1 << 20, stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

const lake = path.join(WORK, 'lake');
rmSync(lake, { recursive: true, force: true });
process.stderr.write(`ingesting ${EVENTS} events (${(inputBytes / 1e6).toFixed(0)} MB) with 1 GiB target files\n`);
const ours = child('ingest-child.ts', [input, lake, String(1024 ** 3)]);
rmSync(lake, { recursive: true, force: true });
process.stderr.write(`ingesting the same events with receivedAt in no order\n`);
const worst = child('ingest-child.ts', [shuffled, lake, String(1024 ** 3)]);
const shuffledBytes = statSync(shuffled).size;
rmSync(lake, { recursive: true, force: true });
process.stderr.write(`ingesting the events in arrival order again, with the raw copy (--raw-copy)\n`);
const withRaw = child('ingest-child.ts', [input, lake, String(1024 ** 3), 'raw-copy']);
const baseDir = path.join(WORK, 'baseline');
rmSync(baseDir, { recursive: true, force: true });
mkdirSync(baseDir);
process.stderr.write(`baseline: parquetjs-lite on the first ${BASELINE_EVENTS} events\n`);
const base = child('baseline-child.ts', [input, baseDir, String(BASELINE_EVENTS)]);

// Calibration, measured in this run: how fast this machine JSON.parses the same lines on one core.
// The machine is shared, so absolute rates move with its load; the ratio to this figure moves less.
function parseRate(): number {
  const buf = readFileSync(input).subarray(0, 200 * 1024 * 1024);
  const lines: Array<[number, number]> = [];
  for (let s = 0; ; ) {
    const e = buf.indexOf(10, s);
    if (e < 0) break;
    lines.push([s, e]);
    s = e + 1;
  }
  let best = 0;
  for (let rep = 0; rep < 3; rep++) {
    const t = performance.now();
    let n = 0;
    for (const [s, e] of lines) if (JSON.parse(buf.toString('utf8', s, e)) !== null) n++;
    best = Math.max(best, n / ((performance.now() - t) / 1000));
  }
  return best;
}
const parsePerCore = parseRate();

// Calibration, measured in this run: the cost of touching memory for the first time. On VMs that back
// guest memory lazily it is large, and every copy into fresh memory (reads, DuckDB's buffers) pays it.
function firstTouchMsPerGB(): { fresh: number; reused: number } {
  const size = 256 * 1024 * 1024;
  let t = performance.now();
  const b = Buffer.allocUnsafeSlow(size);
  b.fill(1);
  const fresh = performance.now() - t;
  t = performance.now();
  b.fill(2);
  const reused = performance.now() - t;
  return { fresh: (fresh * 1024 * 1024 * 1024) / size, reused: (reused * 1024 * 1024 * 1024) / size };
}
const touch = firstTouchMsPerGB();
const oursRate = ours.written! / ours.seconds!;
const worstRate = worst.written! / worst.seconds!;
const baseRate = base.events! / base.seconds!;
const mb = (b: number) => (b / 1e6).toFixed(1);
const rate = (r: number) => Math.round(r).toLocaleString('en-US');
const rows: Array<[string, string, string, string]> = [
  ['events', String(ours.written), String(worst.written), String(base.events)],
  ['events/s end to end', rate(oursRate), rate(worstRate), rate(baseRate)],
  ['input MB/s', mb(inputBytes / ours.seconds!), mb(shuffledBytes / worst.seconds!), mb((inputBytes * (base.events! / EVENTS)) / base.seconds!)],
  ['peak RSS MB', mb(ours.maxRssBytes!), mb(worst.maxRssBytes!), mb(base.maxRssBytes!)],
  ['output MB / files', `${mb(ours.bytes!)} / ${ours.files}`, `${mb(worst.bytes!)} / ${worst.files}`, 'one file per table (snappy)'],
  ['seconds', ours.seconds!.toFixed(1), worst.seconds!.toFixed(1), base.seconds!.toFixed(1)],
  ['phases: input read and decoded / final Parquet writes', ...([ours, worst].map((r) => `${r.inputDoneSeconds!.toFixed(1)} s / ${(r.seconds! - r.inputDoneSeconds!).toFixed(1)} s`) as [string, string]), 'no file reaches 1 GiB: in arrival order a day is written once the input passes its end by an hour (closeAfterMs), the last day after the input ends; in no order every file is written after it'],
  ['CPU core-seconds (cores busy on average)', ...([ours, worst].map((r) => `${r.cpuSeconds!.toFixed(1)} (${(r.cpuSeconds! / r.seconds!).toFixed(2)})`) as [string, string]), `this machine has ${os.cpus().length}`],
  ['of which in the kernel (page faults, file copies)', ...([ours, worst].map((r) => `${r.systemSeconds!.toFixed(1)} core-s; ${(r.minorFaults! / 1e3).toFixed(0)} k page faults (${((r.minorFaults! * 4096) / 1e9).toFixed(1)} GB first touched)`) as [string, string]), ''],
  ['arrival order with `--raw-copy` (gzip level 1 of every input byte): events/s, CPU, raw copy', `${rate(withRaw.written! / withRaw.seconds!)} events/s, ${withRaw.cpuSeconds!.toFixed(1)} core-s, ${mb(withRaw.rawBytes!)} MB`, '', `${((withRaw.seconds! / ours.seconds! - 1) * 100).toFixed(0)}% more time and ${(withRaw.cpuSeconds! - ours.cpuSeconds!).toFixed(1)} core-s more than without it (input ÷ copy: ${(inputBytes / withRaw.rawBytes!).toFixed(1)}×)`],
  ['calibration: writing 1 GB of memory, fresh / already touched (this run)', `${(touch.fresh / 1000).toFixed(2)} s / ${(touch.reused / 1000).toFixed(2)} s`, '', 'the cost of fresh memory on this machine'],
  ['calibration: JSON.parse alone, 1 core (this run)', `${rate(parsePerCore)} events/s`, '', `ingest (arrival order) ÷ it: ${(oursRate / parsePerCore).toFixed(2)}× (JSON.parse of each line, best of 3 over 200 MB)`],
];
const cpu = (os.cpus()[0]?.model ?? 'unknown').trim();
const lines = [
  '',
  `## ${new Date().toISOString().slice(0, 10)} — ingest, ${EVENTS.toLocaleString('en-US')} events of ~${Math.round(inputBytes / EVENTS)} B`,
  '',
  `Machine: ${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, load ${os.loadavg()[0]!.toFixed(1)} at the end. Target files 1 GiB, partitioned by dt, zstd level 1 (the default).`,
  '',
  '| figure | Tributary, arrival order | Tributary, receivedAt in no order | baseline: parquetjs-lite (arrival order) |',
  '|---|---|---|---|',
  ...rows.map(([a, b, c, d]) => `| ${a} | ${b} | ${c} | ${d} |`),
  '',
  `Ratio (events/s, Tributary ÷ baseline, measured in this run): **${(oursRate / baseRate).toFixed(1)}×** in arrival order, ${(worstRate / baseRate).toFixed(1)}× with receivedAt in no order. Target: ≥ 100,000 events/s, peak RSS < 1.5 GB.`,
  '',
];
process.stdout.write(lines.join('\n'));
const results = path.join(HERE, 'RESULTS.md');
if (!existsSync(results) || readFileSync(results, 'utf8').trim() === '') appendFileSync(results, '# Benchmark results\n\nAppended by `npm run bench`; newest last. Figures are from one run on a shared, noisy machine: compare the ratios.\n');
appendFileSync(results, lines.join('\n'));
