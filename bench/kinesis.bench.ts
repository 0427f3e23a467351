/**
 * Kinesis consumer benchmark (part of `npm run bench`, issue 3): consumer throughput from kinesalite
 * (records/s, and the share kinesalite's own read speed accounts for) and end-to-end lag from
 * PutRecords to committed file with a 10 s time cap. kinesalite runs in a process of its own and the
 * consumer in another (this script again, `--consume`), so neither shares the other's event loop, as
 * with a real Kinesis. Appended to bench/RESULTS.md; nothing asserted.
 */
import { GetRecordsCommand, GetShardIteratorCommand, PutRecordsCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { listCommittedFiles } from '../src/catalog/files.ts';
import { Ingestor } from '../src/ingest/ingestor.ts';
import { consumeKinesis } from '../src/ingest/kinesis-consumer.ts';
import { openLocalLake } from '../src/lake.ts';
import { sampleLines } from '../src/sample/generate.ts';
import { openDuckDB, sqlString } from '../src/writer/duckdb.ts';
import { createStream, listShards, localKinesisClient, putLines } from '../test/support/kinesalite.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WORK = path.join(HERE, '.work');
const SHARDS = 4;
const EVENTS_PER_RECORD = 10;
const CAP_MS = 10_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What a consumer child reports at the end. */
interface ConsumerReport {
  /** Seconds from consumeKinesis() until every event was read / committed (onProgress: ±1 s). */
  readSec: number;
  committedSec: number;
  /** CPU seconds of the consumer process (all threads) until every event was read / committed. */
  readCpu: number;
  committedCpu: number;
  /** Seconds from the abort (everything committed) until consumeKinesis() resolved. */
  stopSec: number;
  read: number;
  written: number;
  deadLettered: number;
  files: number;
  bytes: number;
  maxRssBytes: number;
}

// ------------------------------------------------------------------ the consumer process

/** `--consume <endpoint> <stream> <lake> <events> [recordsPerCall]`: runs until every event is committed. */
async function consumeChild([endpoint, stream, lake, events, perCall]: string[]): Promise<void> {
  const expected = Number(events);
  const { storage, catalog } = openLocalLake(lake!);
  const ac = new AbortController();
  const held = new Set<string>();
  let ready = false;
  let readSec = NaN;
  let committedSec = NaN;
  let readCpu = NaN;
  let committedCpu = NaN;
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const cpu0 = cpu();
  const t0 = performance.now();
  const ingestor = new Ingestor(storage, catalog, {
    maxFileAgeMs: CAP_MS,
    signal: ac.signal,
    onProgress: (s) => {
      const at = (performance.now() - t0) / 1000;
      if (Number.isNaN(readSec) && s.read >= expected) {
        readSec = at;
        readCpu = cpu() - cpu0;
      }
      if (Number.isNaN(committedSec) && s.written + s.deadLettered >= expected) {
        committedSec = at;
        committedCpu = cpu() - cpu0;
      }
      if (s.written + s.deadLettered >= expected) ac.abort();
    },
  });
  const stats = await consumeKinesis(
    ingestor,
    {
      stream: stream!,
      storage,
      endpoint,
      region: 'us-east-1',
      ...(perCall ? { recordsPerCall: Number(perCall) } : {}),
      // Progress lines name the shards held: ready (the lag producer may start) once all are.
      logIntervalMs: 100,
      onLog: (line) => {
        const m = /^kinesis [^/]+\/(shardId-\d+): /.exec(line);
        if (m !== null) held.add(m[1]!);
        if (!ready && held.size >= SHARDS) {
          ready = true;
          process.stdout.write(JSON.stringify({ ready: true }) + '\n');
        }
      },
    },
    ac.signal,
  );
  const stopSec = (performance.now() - t0) / 1000 - committedSec;
  const report: ConsumerReport = {
    readSec,
    committedSec,
    readCpu,
    committedCpu,
    stopSec,
    read: stats.read,
    written: stats.written,
    deadLettered: stats.deadLettered,
    files: stats.files,
    bytes: stats.bytes,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
  };
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exit(0); // kinesalite's keep-alive sockets would hold the process a while
}

// ------------------------------------------------------------------ the orchestrator

/** kinesalite in a process of its own on a free 127.0.0.1 port. */
async function startKinesaliteProcess(): Promise<{ proc: ChildProcess; endpoint: string }> {
  const script =
    "const s = require('kinesalite')({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 50 });" +
    "s.listen(0, '127.0.0.1', () => console.log(s.address().port));";
  const proc = spawn(process.execPath, ['-e', script], { cwd: path.join(HERE, '..'), stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`kinesalite exited with ${code}`)));
    createInterface({ input: proc.stdout! }).once('line', resolve);
  });
  return { proc, endpoint: `http://127.0.0.1:${port.trim()}` };
}

/** CPU seconds a process has used (Linux /proc; NaN elsewhere). */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ (100 on Linux)
  } catch {
    return NaN;
  }
}

/** Starts a consumer child; `ready` resolves when it holds every shard, `done` with its report. */
function startConsumer(endpoint: string, stream: string, lake: string, events: number, recordsPerCall?: number) {
  rmSync(lake, { recursive: true, force: true });
  const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--consume', endpoint, stream, lake, String(events), ...(recordsPerCall ? [String(recordsPerCall)] : [])];
  const env = { ...process.env, AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! });
  let onReady: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  const done = new Promise<ConsumerReport>((resolve, reject) => {
    let last: ConsumerReport | undefined;
    lines.on('line', (l) => {
      const msg = JSON.parse(l) as { ready?: boolean } & ConsumerReport;
      if (msg.ready) onReady();
      else last = msg;
    });
    proc.once('exit', (code) => (code === 0 && last ? resolve(last) : reject(new Error(`consumer exited with ${code}`))));
  });
  return { ready, done };
}

/** Reads every shard from TRIM_HORIZON to its tip with plain GetRecords calls, shards in parallel. */
async function drain(client: KinesisClient, stream: string): Promise<{ records: number; events: number; bytes: number }> {
  const total = { records: 0, events: 0, bytes: 0 };
  await Promise.all(
    (await listShards(client, stream)).map(async (s) => {
      let it = (await client.send(new GetShardIteratorCommand({ StreamName: stream, ShardId: s.ShardId, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
      while (it !== undefined) {
        const res = await client.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10_000 }));
        const recs = res.Records ?? [];
        if (recs.length === 0) break;
        for (const r of recs) {
          const data = Buffer.from(r.Data!.buffer, r.Data!.byteOffset, r.Data!.byteLength);
          total.records++;
          total.bytes += data.byteLength;
          for (let i = data.indexOf(10); i >= 0; i = data.indexOf(10, i + 1)) total.events++;
          total.events++;
        }
        it = res.NextShardIterator;
      }
    }),
  );
  return total;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const sec = (n: number) => n.toFixed(1);
const MB = (b: number) => (b / 1e6).toFixed(1);

async function main(): Promise<void> {
  const EVENTS = Number(process.env.BENCH_KINESIS_EVENTS ?? 200_000);
  const LAG_RATE = 2_000; // events/s
  const LAG_SECONDS = Number(process.env.BENCH_KINESIS_LAG_SECONDS ?? 40);
  const loadAtStart = os.loadavg().map((l) => l.toFixed(1)).join(' / ');
  const { proc: kin, endpoint } = await startKinesaliteProcess();
  const client = localKinesisClient(endpoint, { requestTimeout: 300_000 });
  try {
    // ---- put: 200 k events of ~1 KB as NDJSON records of 10, four producers at once
    const stream = 'bench-throughput';
    await createStream(client, stream, SHARDS);
    const lines = [...sampleLines({ count: EVENTS, seed: 2026, padToBytes: 1000 })];
    const payloads: Buffer[] = [];
    for (let i = 0; i < lines.length; i += EVENTS_PER_RECORD) payloads.push(Buffer.from(lines.slice(i, i + EVENTS_PER_RECORD).join('\n')));
    const payloadBytes = payloads.reduce((n, p) => n + p.length, 0);
    process.stderr.write(`putting ${int(EVENTS)} events (${int(payloads.length)} records, ${MB(payloadBytes)} MB) into ${SHARDS} shards\n`);
    const quarter = Math.ceil(payloads.length / 4);
    let t = performance.now();
    await Promise.all([0, 1, 2, 3].map((q) => putLines(client, stream, payloads.slice(q * quarter, (q + 1) * quarter), { partitionKey: (i) => `pk-${q}-${i}` })));
    const putSec = (performance.now() - t) / 1000;

    // ---- kinesalite alone: a plain GetRecords drain
    process.stderr.write('draining with plain GetRecords\n');
    let cpu = cpuSeconds(kin.pid!);
    const clientCpu0 = process.cpuUsage();
    t = performance.now();
    const drained = await drain(client, stream);
    const drainSec = (performance.now() - t) / 1000;
    const drainCpu = cpuSeconds(kin.pid!) - cpu;
    const clientCpuUsage = process.cpuUsage(clientCpu0);
    const drainClientCpu = (clientCpuUsage.user + clientCpuUsage.system) / 1e6;

    // ---- the consumer, defaults but the 10 s time cap; and with ~10 MB per call, as Kinesis caps a response
    process.stderr.write('consumer (default recordsPerCall 10000)\n');
    cpu = cpuSeconds(kin.pid!);
    const ours = await startConsumer(endpoint, stream, path.join(WORK, 'kinesis-lake'), EVENTS).done;
    const oursCpu = cpuSeconds(kin.pid!) - cpu;
    const perCall = Math.max(1, Math.floor((10 * 1024 * 1024) / (payloadBytes / payloads.length)));
    process.stderr.write(`consumer (recordsPerCall ${perCall}, ~10 MB per call)\n`);
    cpu = cpuSeconds(kin.pid!);
    const capped = await startConsumer(endpoint, stream, path.join(WORK, 'kinesis-lake'), EVENTS, perCall).done;
    const cappedCpu = cpuSeconds(kin.pid!) - cpu;
    const paceFloorSec = payloadBytes / (SHARDS * 2 * 1024 * 1024);

    // ---- lag: a steady producer, committed files watched every 100 ms
    const lagStream = 'bench-lag';
    await createStream(client, lagStream, SHARDS);
    const lagLake = path.join(WORK, 'kinesis-lag-lake');
    const lagEvents = LAG_RATE * LAG_SECONDS;
    const consumer = startConsumer(endpoint, lagStream, lagLake, lagEvents);
    await consumer.ready;
    process.stderr.write(`lag: ${int(LAG_RATE)} events/s for ${LAG_SECONDS} s, time cap ${CAP_MS / 1000} s\n`);
    const { storage, catalog } = openLocalLake(lagLake);
    const seen = new Map<string, number>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const now = Date.now();
        for (const table of await catalog.listTables()) {
          for (const f of await listCommittedFiles(storage, catalog, table.name)) {
            const file = path.join(lagLake, f.key);
            if (!seen.has(file)) seen.set(file, now);
          }
        }
        await sleep(100);
      }
    })();
    const template = [...sampleLines({ count: 5_000, seed: 7, padToBytes: 1000 })].map((l) => JSON.parse(l) as Record<string, unknown>);
    const recordsPerTick = LAG_RATE / EVENTS_PER_RECORD / 10; // every 100 ms
    const puts: Array<Promise<unknown>> = [];
    const lagStart = Date.now();
    let n = 0;
    for (let tick = 0; tick < LAG_SECONDS * 10; tick++) {
      const wait = lagStart + tick * 100 - Date.now();
      if (wait > 0) await sleep(wait);
      const putMs = Date.now();
      const at = new Date(putMs).toISOString();
      const records = [];
      for (let r = 0; r < recordsPerTick; r++) {
        const evs = [];
        for (let e = 0; e < EVENTS_PER_RECORD; e++, n++) {
          const ev = { ...template[n % template.length]!, messageId: `lag-${putMs}-${n}`, receivedAt: at, timestamp: at, sentAt: at };
          evs.push(JSON.stringify(ev));
        }
        records.push({ Data: Buffer.from(evs.join('\n')), PartitionKey: `lag-${n}` });
      }
      puts.push(client.send(new PutRecordsCommand({ StreamName: lagStream, Records: records })));
    }
    const failed = (await Promise.all(puts)).reduce((k: number, r) => k + ((r as { FailedRecordCount?: number }).FailedRecordCount ?? 0), 0);
    if (failed > 0) throw new Error(`${failed} lag records failed to put`);
    const lagReport = await consumer.done;
    await sleep(200);
    watching = false;
    await watcher;

    const { instance, conn } = await openDuckDB({ threads: 2 });
    const files = [...seen.keys()];
    const reader = await conn.runAndReadAll(`SELECT filename, message_id FROM read_parquet([${files.map(sqlString).join(', ')}], filename = true, union_by_name = true)`);
    const lags: number[] = [];
    const oldestPut = new Map<string, number>();
    for (const [file, id] of reader.getRows() as Array<[string, string]>) {
      const putMs = Number(id.split('-')[1]);
      lags.push(seen.get(file)! - putMs);
      oldestPut.set(file, Math.min(oldestPut.get(file) ?? Infinity, putMs));
    }
    conn.closeSync();
    instance.closeSync();
    lags.sort((a, b) => a - b);
    const fileAges = files.map((f) => seen.get(f)! - oldestPut.get(f)!).sort((a, b) => a - b);
    const mean = lags.reduce((a, b) => a + b, 0) / lags.length;
    // Diagnostics (stderr only): when each file appeared, and how old its oldest event was then.
    for (const f of files.sort((a, b) => seen.get(a)! - seen.get(b)!)) {
      process.stderr.write(`  +${sec((seen.get(f)! - lagStart) / 1000)} s  oldest event ${sec((seen.get(f)! - oldestPut.get(f)!) / 1000)} s old  ${path.relative(lagLake, f)}\n`);
    }
    process.stderr.write(`consumer stop after the last commit: ${[ours, capped, lagReport].map((r) => sec(r.stopSec)).join(' / ')} s\n`);

    // ---- report
    const readRate = ours.read / ours.readSec;
    const cappedRate = capped.read / capped.readSec;
    const share = (k: number, c: number) => `${((k / (k + c)) * 100).toFixed(0)}%`;
    const rows: Array<[string, string, string]> = [
      [
        'PutRecords, 4 producers × 500-record requests',
        `${int(payloads.length / putSec)} records/s, ${int(EVENTS / putSec)} events/s, ${MB(payloadBytes / putSec)} MB/s`,
        `${int(payloads.length)} records of ${EVENTS_PER_RECORD} events (${MB(payloadBytes)} MB) in ${sec(putSec)} s`,
      ],
      [
        'kinesalite alone: GetRecords drain (Limit 10000, 4 shards in parallel)',
        `${int(drained.records / drainSec)} records/s, ${int(drained.events / drainSec)} events/s, ${MB(drained.bytes / drainSec)} MB/s (${sec(drainSec)} s)`,
        `CPU: kinesalite ${sec(drainCpu)} s, SDK client ${sec(drainClientCpu)} s`,
      ],
      [
        'consumer (consumeKinesis, defaults, cap 10 s): all read',
        `${int(readRate / EVENTS_PER_RECORD)} records/s, ${int(readRate)} events/s (${sec(ours.readSec)} s)`,
        `kinesalite drain = **${((drainSec / ours.readSec) * 100).toFixed(0)}%** of it (consumer ÷ drain ${(ours.readSec / drainSec).toFixed(1)}×)`,
      ],
      [
        'CPU while the consumer ran (defaults)',
        `consumer ${sec(ours.readCpu)} s to all read (${sec(ours.committedCpu)} s to all committed), kinesalite ${sec(oursCpu)} s`,
        `kinesalite's share of the CPU: ${share(oursCpu, ours.committedCpu)}`,
      ],
      ['consumer: all committed', `${sec(ours.committedSec)} s, ${ours.files} files, ${MB(ours.bytes)} MB`, `includes waiting for the last time cap (${CAP_MS / 1000} s)`],
      ['consumer peak RSS', `${MB(ours.maxRssBytes)} MB`, `recordsPerCall ${perCall}: ${MB(capped.maxRssBytes)} MB`],
      [
        `consumer, recordsPerCall ${perCall} (~10 MB per call, Kinesis' response cap): all read`,
        `${int(cappedRate / EVENTS_PER_RECORD)} records/s, ${int(cappedRate)} events/s (${sec(capped.readSec)} s)`,
        `2 MB/s per-shard pacing floor ${sec(paceFloorSec)} s; CPU: consumer ${sec(capped.committedCpu)} s, kinesalite ${sec(cappedCpu)} s`,
      ],
      [
        `lag PutRecords → committed file (${int(LAG_RATE)} events/s for ${LAG_SECONDS} s, ${int(lags.length)} events)`,
        `p50 ${sec(pct(lags, 50) / 1000)} s, p99 ${sec(pct(lags, 99) / 1000)} s, max ${sec(lags.at(-1)! / 1000)} s (mean ${sec(mean / 1000)} s)`,
        `time cap ${CAP_MS / 1000} s; file first seen − put of its oldest event: p50 ${sec(pct(fileAges, 50) / 1000)} s, max ${sec(fileAges.at(-1)! / 1000)} s`,
      ],
      ['lag run: files committed', `${files.length}`, `consumer wrote ${lagReport.files}; ${int(lagReport.written)} rows`],
    ];
    const out = [
      '',
      `## ${new Date().toISOString().slice(0, 10)} — Kinesis consumer (kinesalite → lake), ${int(EVENTS)} events of ~${Math.round(payloadBytes / EVENTS)} B`,
      '',
      `Machine: ${(os.cpus()[0]?.model ?? '?').trim()}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average ${loadAtStart} at the start. ` +
        `kinesalite in its own process, the consumer in another; ${SHARDS} shards, NDJSON records of ${EVENTS_PER_RECORD} events, target files 512 MiB, time cap ${CAP_MS / 1000} s. ` +
        'Consumer times come from onProgress, called once a second (±1 s).',
      '',
      '| figure | value | beside it |',
      '|---|---|---|',
      ...rows.map(([a, b, c]) => `| ${a} | ${b} | ${c} |`),
      '',
      'Throughput: kinesalite has no byte cap per GetRecords, so with the default Limit of 10000 each shard\'s backlog arrives in one response of tens of MB, ' +
        'and the consumer decodes it only after it arrived (the peak RSS row compares both); with ~10 MB per call, as Kinesis answers, reading and decoding overlap but the 2 MB/s per-shard pacing applies.',
      '',
      `Lag: a row waits for its partition's file, flushed once the partition's first row (counted from when the consumer applied it) is ${CAP_MS / 1000} s old, checked every second; ` +
        'the files due in one tick are written one at a time (maxConcurrentWrites 1), and new rows wait meanwhile. So lags spread over 0 to the cap, plus the read delay, up to a second of tick, and the writes queued ahead.',
      '',
    ];
    process.stdout.write(out.join('\n'));
    appendFileSync(path.join(HERE, 'RESULTS.md'), out.join('\n'));
  } finally {
    client.destroy();
    kin.kill();
  }
}

// Last: the helpers above are initialised by now.
if (process.argv[2] === '--consume') await consumeChild(process.argv.slice(3));
else await main();
