import * as path from 'node:path';
import { Ingestor, type IngestOptions, type IngestStats } from '../../ingest/ingestor.ts';
import { FileSource } from '../../source/file-source.ts';
import { formatBytes, parseDuration, parseDurationOrOff, parseSize } from '../../units.ts';
import { ConfigError } from '../../errors.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, rawCopyOption, type Io } from '../args.ts';

export const INGEST_HELP = `tributary ingest [options] <file ...|->
tributary ingest --kinesis STREAM [kinesis options] [options]

Reads Segment events (NDJSON, .jsonl, .json, gzipped or not; '-' for stdin) into the lake, or
consumes a Kinesis stream until stopped (SIGINT/SIGTERM: flush, commit, checkpoint, exit 0).

  --lake DIR               lake directory (default $TRIBUTARY_LAKE, else ./lake)
  --target-file-size SIZE  Parquet file size to aim for (default 512MB)
  --max-file-age DURATION  longest rows wait before their file is flushed (default 15m)
  --close-after DURATION   a partition's file is written once the input's receivedAt is this far
                           past the partition's day or hour (default 1h; off: never)
  --partition-by FIELDS    dt (default), event,dt, dt,hour, ...
  --compression CODEC      zstd (default) or snappy
  --compression-level N    zstd level, 1 (default, fastest) to 22 (smallest)
  --max-open-partitions N  partitions buffered at once (default 64)
  --raw-copy               also keep the input as delivered (invalid records too), gzip'd, under
                           <lake>/_raw/<source>/dt=<day>/ for re-ingesting later
  --json                   print one JSON object of counts at the end
  --config FILE            settings file (default ./tributary.config.json)

Kinesis (several processes may consume one stream into one lake; shards are shared by leases):
  --kinesis STREAM         stream name
  --region REGION          default AWS_REGION
  --endpoint URL           default AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL
  --start POS              trim-horizon (default), latest or at-timestamp:2026-11-20T00:00:00Z,
                           for shards without a checkpoint
  --consumer-name NAME     this process in leases and logs (default <host>-<pid>)
  --lease-timeout DURATION a dead consumer's shards are taken over after it (default 30s)
  --shard-sync DURATION    how often shards, leases and balance are reviewed (default 10s)
`;

export async function ingestCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...LAKE_OPTIONS,
    json: { type: 'boolean' },
    'target-file-size': { type: 'string' },
    'max-file-age': { type: 'string' },
    'close-after': { type: 'string' },
    'partition-by': { type: 'string' },
    compression: { type: 'string' },
    'compression-level': { type: 'string' },
    'max-open-partitions': { type: 'string' },
    'raw-copy': { type: 'boolean' },
    kinesis: { type: 'string' },
    region: { type: 'string' },
    endpoint: { type: 'string' },
    start: { type: 'string' },
    'consumer-name': { type: 'string' },
    'lease-timeout': { type: 'string' },
    'shard-sync': { type: 'string' },
  });
  if (values.help) {
    io.stdout.write(INGEST_HELP);
    return EXIT.ok;
  }
  const kinesis = values.kinesis;
  if (kinesis === undefined) {
    if (positionals.length === 0) throw new ConfigError('ingest: no input given; name NDJSON files, or - for standard input (or --kinesis STREAM)');
    for (const k of ['region', 'endpoint', 'start', 'consumer-name', 'lease-timeout', 'shard-sync'] as const) {
      if (values[k] !== undefined) throw new ConfigError(`ingest: --${k} applies to --kinesis only`);
    }
  } else if (positionals.length > 0) {
    throw new ConfigError(`ingest: give either --kinesis or input files, not both (got ${positionals.join(' ')})`);
  }
  const settings = await lakeSettings(values, io);
  const { config, lake } = settings;
  const maxOpen = values['max-open-partitions'] ?? config.maxOpenPartitions;
  const controller = new AbortController();
  const progressTty = io.stderr.isTTY === true && !values.json;
  let lastLine = 0;
  const { storage, catalog } = await settings.open();
  const ingestOptions: IngestOptions = {
    targetFileBytes: parseSize('--target-file-size', values['target-file-size'] ?? config.targetFileSize ?? '512MB'),
    maxFileAgeMs: parseDuration('--max-file-age', values['max-file-age'] ?? config.maxFileAge ?? '15m'),
    closeAfterMs: parseDurationOrOff('--close-after', values['close-after'] ?? config.closeAfter ?? '1h'),
    partitionBy: values['partition-by'] ?? config.partitionBy ?? 'dt',
    compression: (values.compression ?? config.compression) as 'zstd' | 'snappy' | undefined,
    compressionLevel: values['compression-level'] !== undefined ? levelFlag(values['compression-level']) : config.compressionLevel,
    maxOpenPartitions: maxOpen === undefined ? undefined : Number(maxOpen),
    tables: config.tables,
    promote: config.promote,
    rawCopy: rawCopyOption(values['raw-copy'], config.rawCopy),
    signal: controller.signal,
    onProgress: progressTty
      ? (s) => {
          const now = Date.now();
          if (now - lastLine < 250) return;
          lastLine = now;
          io.stderr.write(`\r\x1b[K${progressLine(s)}`);
        }
      : undefined,
  };
  const stop = () => {
    if (controller.signal.aborted) process.exit(130); // a second signal: leave now
    io.stderr.write('\nstopping: flushing and committing what was read (signal again to abort)\n');
    controller.abort();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  let stats: IngestStats;
  try {
    if (kinesis !== undefined) {
      // Loaded here only: the Kinesis client is part of the AWS SDK, which file input never needs.
      const [{ consumeKinesis }, { parseKinesisStart }] = await Promise.all([import('../../ingest/kinesis-consumer.ts'), import('../../source/kinesis-source.ts')]);
      stats = await consumeKinesis(new Ingestor(storage, catalog, ingestOptions), {
        stream: kinesis,
        storage,
        region: values.region,
        endpoint: values.endpoint,
        start: values.start === undefined ? undefined : parseKinesisStart(values.start),
        consumerName: values['consumer-name'],
        leaseTimeoutMs: values['lease-timeout'] === undefined ? undefined : parseDuration('--lease-timeout', values['lease-timeout']),
        shardSyncMs: values['shard-sync'] === undefined ? undefined : parseDuration('--shard-sync', values['shard-sync']),
        onLog: (line) => io.stderr.write(`${new Date().toISOString()} ${line}\n`),
      }, controller.signal);
    } else {
      const source = new FileSource(positionals.map((p) => (p === '-' ? p : path.resolve(io.cwd, p))), { stdin: io.stdin as never });
      stats = await new Ingestor(storage, catalog, ingestOptions).run(source);
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    if (progressTty) io.stderr.write('\r\x1b[K');
  }
  if (values.json) {
    const { read, written, deadLettered, files, bytes, seconds } = stats;
    io.stdout.write(JSON.stringify({ read, written, deadLettered, skipped: stats.skipped, files, bytes, seconds: Math.round(seconds * 1000) / 1000 }) + '\n');
  } else {
    io.stdout.write(summary(stats, lake));
  }
  return EXIT.ok;
}

function levelFlag(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 1 || n > 22) throw new ConfigError(`--compression-level: ${JSON.stringify(v)} is not valid; expected a whole number from 1 to 22`);
  return n;
}

/** The progress line drawn on a terminal while reading. */
export function progressLine(s: IngestStats): string {
  const rate = s.seconds > 0 ? Math.round(s.read / s.seconds) : 0;
  const pct = s.inputTotalBytes ? ` (${Math.floor((100 * s.inputBytes) / s.inputTotalBytes)}%)` : '';
  const eta = s.inputTotalBytes && s.inputBytes > 0 ? `, ETA ${Math.round(((s.inputTotalBytes - s.inputBytes) * s.seconds) / s.inputBytes)} s` : '';
  return `read ${s.read.toLocaleString('en-US')} events, ${formatBytes(s.inputBytes)}${s.inputTotalBytes ? ' of ' + formatBytes(s.inputTotalBytes) : ''}${pct}, ${rate.toLocaleString('en-US')} events/s, ${s.files} files committed${eta}`;
}

/** The human summary printed at the end. */
export function summary(s: IngestStats, lake: string): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const lines = [
    `ingested into ${lake} in ${s.seconds.toFixed(1)} s (${n(Math.round(s.read / Math.max(s.seconds, 0.001)))} events/s)`,
    `  read          ${n(s.read)}`,
    `  written       ${n(s.written)}`,
    `  dead letters  ${n(s.deadLettered)}${s.deadLettered > 0 ? `  (see ${lake}/_deadletter/)` : ''}`,
  ];
  if (s.skipped > 0) lines.push(`  skipped       ${n(s.skipped)}  (already in the lake from an earlier run)`);
  lines.push(`  files         ${n(s.files)}, ${formatBytes(s.bytes)}`);
  return lines.join('\n') + '\n';
}
