import * as http from 'node:http';
import * as path from 'node:path';
import { createCollector } from '../../collector/collector.ts';
import { ConfigError } from '../../errors.ts';
import { Ingestor } from '../../ingest/ingestor.ts';
import { queryHandler } from '../../query/query-endpoint.ts';
import { kinesisClient } from '../../aws/kinesis-client.ts';
import { consumeKinesis } from '../../ingest/kinesis-consumer.ts';
import { KinesisLog } from '../../source/kinesis-log.ts';
import { LocalLog, LocalLogSource, type EventLog } from '../../source/local-log.ts';
import { parseDuration, parseDurationOrOff, parseSize } from '../../units.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, rawCopyOption, type Io } from '../args.ts';

export const DEV_HELP = `tributary dev --write-key KEY [--lake DIR] [--port 8088] [--host 127.0.0.1] [--kinesis STREAM]

A whole real-time stack in one process: a Segment-compatible collector (POST /v1/batch, /v1/track,
... with the write key as HTTP Basic user) appending to a local log in <lake>/_tributary/log, a
consumer writing the log into the lake, and live SQL over committed files ∪ rows not flushed yet
(POST /v1/query; use tributary query --live http://HOST:PORT). SIGINT/SIGTERM: stop taking
events, flush, commit, exit 0.

  --write-key KEY          required (or $TRIBUTARY_WRITE_KEY)
  --max-file-age DURATION  --close-after DURATION  --target-file-size SIZE
  --partition-by FIELDS    --raw-copy              as for ingest
  --views DIR              extra .sql views for queries

With --kinesis STREAM the collector puts events to the stream (answering 200 once Kinesis accepted
them) and the consumer reads the stream instead of the local log, sharing its shards with any other
consumers of the lake (see ingest --kinesis); --region, --endpoint, --consumer-name, --lease-timeout
and --shard-sync as for ingest.
`;

export async function devCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...LAKE_OPTIONS,
    port: { type: 'string' },
    host: { type: 'string' },
    'write-key': { type: 'string' },
    'max-file-age': { type: 'string' },
    'raw-copy': { type: 'boolean' },
    'close-after': { type: 'string' },
    'target-file-size': { type: 'string' },
    'partition-by': { type: 'string' },
    views: { type: 'string', multiple: true },
    kinesis: { type: 'string' },
    region: { type: 'string' },
    endpoint: { type: 'string' },
    'consumer-name': { type: 'string' },
    'lease-timeout': { type: 'string' },
    'shard-sync': { type: 'string' },
  });
  if (values.help) {
    io.stdout.write(DEV_HELP);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new ConfigError(`dev: unexpected argument ${JSON.stringify(positionals[0])}`);
  const writeKey = values['write-key'] ?? (io.env.TRIBUTARY_WRITE_KEY || undefined);
  if (writeKey === undefined) throw new ConfigError('dev: --write-key is required (the key Segment clients send as HTTP Basic user name)');
  const port = Number(values.port ?? 8088);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`--port: ${JSON.stringify(values.port)} is not a port number (0–65535)`);
  const host = values.host ?? '127.0.0.1';
  const settings = await lakeSettings(values, io);
  const { config } = settings;
  const { storage, catalog } = await settings.open();
  const kinesis = values.kinesis;
  if (kinesis === undefined) {
    for (const k of ['region', 'endpoint', 'consumer-name', 'lease-timeout', 'shard-sync'] as const) {
      if (values[k] !== undefined) throw new ConfigError(`dev: --${k} applies to --kinesis only`);
    }
  }
  // The log must be on local disk (fsync); for an S3 lake it lives in ./.tributary/log.
  const logDir = storage.localPath('_tributary/log') ?? path.resolve(io.cwd, '.tributary', 'log');
  const client = kinesis === undefined ? null : kinesisClient({ region: values.region, endpoint: values.endpoint });
  const log: EventLog = client === null ? await LocalLog.open(logDir) : new KinesisLog({ stream: kinesis!, client });
  const ac = new AbortController();
  const ingestor = new Ingestor(storage, catalog, {
    targetFileBytes: parseSize('--target-file-size', values['target-file-size'] ?? config.targetFileSize ?? '512MB'),
    maxFileAgeMs: parseDuration('--max-file-age', values['max-file-age'] ?? config.maxFileAge ?? '15m'),
    closeAfterMs: parseDurationOrOff('--close-after', values['close-after'] ?? config.closeAfter ?? '1h'),
    partitionBy: values['partition-by'] ?? config.partitionBy ?? 'dt',
    compression: config.compression,
    tables: config.tables,
    promote: config.promote,
    rawCopy: rawCopyOption(values['raw-copy'], config.rawCopy),
    signal: ac.signal,
  });
  const source = client === null ? new LocalLogSource(logDir, { log: log as LocalLog, signal: ac.signal }) : null;
  const consuming =
    source !== null
      ? ingestor.run(source)
      : consumeKinesis(
          ingestor,
          {
            stream: kinesis!,
            storage,
            client: client!,
            consumerName: values['consumer-name'],
            leaseTimeoutMs: values['lease-timeout'] === undefined ? undefined : parseDuration('--lease-timeout', values['lease-timeout']),
            shardSyncMs: values['shard-sync'] === undefined ? undefined : parseDuration('--shard-sync', values['shard-sync']),
            onLog: (line) => io.stderr.write(`${new Date().toISOString()} ${line}\n`),
          },
          ac.signal,
        );
  consuming.catch(() => undefined); // reported below
  const collector = createCollector({ log, writeKeys: [writeKey] });
  const viewDirs = [...(config.views ?? []), ...(values.views ?? [])].map((d) => path.resolve(io.cwd, d));
  const onQuery = queryHandler(storage, catalog, ingestor, [writeKey], { viewDirs });
  const server = http.createServer((req, res) => {
    if ((req.url ?? '').split('?')[0] === '/v1/query') void onQuery(req, res);
    else collector.server.emit('request', req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new ConfigError(`cannot listen on ${host}:${port}: ${err.message}`, { cause: err })));
    server.listen(port, host, resolve);
  });
  const addr = server.address() as { port: number };
  const url = `http://${host}:${addr.port}`;
  io.stdout.write(
    `tributary dev: collector and live queries on ${url} (lake ${storage.root}, ${kinesis === undefined ? `log ${logDir}` : `Kinesis stream ${kinesis}`})\n` +
      `  send:  point a Segment client at ${url} with write key ${JSON.stringify(writeKey)}\n` +
      `  query: npx tributary query --live ${url} --write-key ${JSON.stringify(writeKey)} "SELECT * FROM experiment_results"\n`,
  );
  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const stop = () => {
      if (stopping) process.exit(130);
      stopping = true;
      io.stdout.write('tributary dev: stopping — flushing and committing (signal again to abort)\n');
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    consuming.then(
      () => undefined,
      () => resolve(),
    );
  });
  await stopped;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await collector.close();
  // Drain: everything acknowledged goes into the lake before we exit (a second signal aborts).
  // Events acknowledged through Kinesis are durable there: the consumer commits what it read and stops.
  if (source !== null) source.finish();
  else ac.abort();
  process.once('SIGINT', () => ac.abort());
  process.once('SIGTERM', () => ac.abort());
  try {
    const stats = await consuming;
    io.stdout.write(`tributary dev: stopped; ${stats.written} events written in ${stats.files} files, ${stats.deadLettered} dead letters\n`);
  } finally {
    await log.close();
  }
  return EXIT.ok;
}
