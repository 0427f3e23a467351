import * as path from 'node:path';
import { convertJson, isS3Location, listJsonInputs, type JsonInput } from '../../compact/json-to-parquet.ts';
import { planJsonConversion, type JsonPlan } from '../../compact/json-plan.ts';
import { runMerge, type MergeOptions, type MergeResult } from '../../compact/merge.ts';
import type { AthenaMergeOptions } from '../../compact/athena-merge.ts';
import { badOption } from '../../errors.ts';
import { progressLine, summary } from './ingest.ts';
import { ConfigError } from '../../errors.ts';
import { formatBytes, parseDuration, parseSize } from '../../units.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, type Io } from '../args.ts';
import type { Catalog } from '../../catalog/catalog.ts';
import type { Storage } from '../../storage/storage.ts';

export const COMPACT_HELP = `tributary compact json --from DIR|s3://bucket/prefix [options]

Converts raw JSON history (NDJSON / .json / .jsonl, gzipped or not; Segment's S3 destination
layout segment-logs/<source-id>/<received-day-epoch-ms>/<file>.gz included) to Parquet in the lake,
through the same decoder, validation, dead letters and partitioning as ingest. Idempotent and
resumable: run it again after a failure or a kill and it adds exactly what is missing.

  --from DIR|s3://B/P      directory, or S3 prefix, to read recursively (names starting with . or _
                           skipped); S3 objects are streamed to local disk one at a time, and
                           convert exactly as a local copy would (same files, same skips)
  --lake DIR               lake directory (default $TRIBUTARY_LAKE, else ./lake)
  --target-file-size SIZE  --partition-by FIELDS   as for ingest
  --dry-run                print the plan and change nothing: per table and partition, the events
                           and files the conversion would write, with invalid events and events
                           the lake already holds; read through the conversion's own decoder
  --sample SIZE            most input the plan reads (default 256MB; inputs that fit are read
                           whole and the plan is exact, else up to 256 evenly spaced inputs' heads)
  --json                   print the result (or the plan) as one JSON object
  (--engine athena is refused here: conversion must go through the ingest pipeline's validation,
  dead letters and exactly-once names; convert here, then compact merge --engine athena)

tributary compact merge [options]

Merges small Parquet files into target-size ones, partition by partition, safely while ingest
and queries run: merged files go to a new location, the catalog swaps the partition there in one
step, and the replaced files are deleted only after the grace period.

  --lake DIR               lake directory (default $TRIBUTARY_LAKE, else ./lake)
  --table NAME             only this table
  --older-than DURATION    only files at least this old (default 0)
  --small-file-size SIZE   files below this size are merged (default 128MB)
  --target-file-size SIZE  size merged files aim for (default 512MB)
  --grace DURATION         how long replaced files stay readable (default 1h)
  --dry-run                print the plan, change nothing
  --json                   print the result as one JSON object
  --engine duckdb|athena   who rewrites the files (default duckdb, on this machine)

With --engine athena, partitions too big for one machine are rewritten by Amazon Athena. Without
--run it prints the statements and changes nothing: per table and file count, a CREATE TABLE AS
SELECT (Parquet, the lake's codec, partitioned_by the partition keys, bucketed_by message_id with
one bucket per target-size file) into a staging location under _tributary/athena/, INSERT INTO for
the rest (at most 100 partition × bucket combinations and 262,144 characters each), with checks
that Athena reads exactly the planned files ("$path") and writes as many rows. With --run it runs
them, then swaps each partition to a new generation (staged files plus the files not merged) with
the same versioned catalog step, grace period and guards as the DuckDB engine. Athena must see the
lake's tables at the catalog's locations (--catalog glue:<db>, or tributary catalog sync).

  --run                    run the statements and swap (needs the lake on S3 and AWS access)
  --database NAME          Athena database of the lake's tables (default the catalog's database)
  --workgroup NAME  --output s3://B/P/  --region R  --endpoint URL  --timeout 30m   as athena query
  --location s3://B/P      the lake's S3 root as Athena sees it (default the lake, when on S3)
`;

export async function compactCommand(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    io.stdout.write(COMPACT_HELP);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  if (sub === 'json') return compactJson(rest, io);
  if (sub !== 'merge') throw new ConfigError(`compact: unknown job ${JSON.stringify(sub)}; available: json, merge`);
  const { values, positionals } = parse(rest, {
    ...LAKE_OPTIONS,
    table: { type: 'string' },
    'older-than': { type: 'string' },
    'small-file-size': { type: 'string' },
    'target-file-size': { type: 'string' },
    grace: { type: 'string' },
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
    engine: { type: 'string' },
    run: { type: 'boolean' },
    database: { type: 'string' },
    workgroup: { type: 'string' },
    output: { type: 'string' },
    region: { type: 'string' },
    endpoint: { type: 'string' },
    timeout: { type: 'string' },
    location: { type: 'string' },
  });
  if (values.help) {
    io.stdout.write(COMPACT_HELP);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new ConfigError(`compact merge: unexpected argument ${JSON.stringify(positionals[0])}`);
  const engine = values.engine ?? 'duckdb';
  if (engine !== 'duckdb' && engine !== 'athena') badOption('--engine', values.engine, 'duckdb or athena');
  const athenaOnly = (['run', 'database', 'workgroup', 'output', 'region', 'endpoint', 'timeout', 'location'] as const).filter((k) => values[k] !== undefined);
  if (engine === 'duckdb' && athenaOnly.length > 0) throw new ConfigError(`compact merge: --${athenaOnly[0]} applies to --engine athena only`);
  if (values.run && values['dry-run']) throw new ConfigError('compact merge: --run and --dry-run exclude each other');
  const settings = await lakeSettings(values, io);
  const { config } = settings;
  const { storage, catalog } = await settings.open();
  const progressTty = io.stderr.isTTY === true && !values.json;
  const started = Date.now();
  const common: MergeOptions = {
    table: values.table,
    olderThanMs: values['older-than'] === undefined ? undefined : parseDuration('--older-than', values['older-than']),
    smallFileBytes: values['small-file-size'] === undefined ? undefined : parseSize('--small-file-size', values['small-file-size']),
    targetFileBytes: parseSize('--target-file-size', values['target-file-size'] ?? config.targetFileSize ?? '512MB'),
    graceMs: values.grace === undefined ? undefined : parseDuration('--grace', values.grace),
    compression: config.compression,
  };
  if (engine === 'athena' && !values['dry-run']) return athenaMerge(values, common, storage, catalog, io);
  const result = await runMerge(storage, catalog, {
    ...common,
    dryRun: values['dry-run'],
    onProgress: progressTty
      ? (p) => {
          const elapsed = (Date.now() - started) / 1000;
          const eta = p.bytesDone > 0 ? ((p.bytes - p.bytesDone) * elapsed) / p.bytesDone : 0;
          io.stderr.write(`\r\x1b[K${p.partitionsDone}/${p.partitions} partitions, ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytes)}, ETA ${eta.toFixed(0)} s`);
        }
      : undefined,
  });
  if (progressTty) io.stderr.write('\r\x1b[K');
  io.stdout.write(values.json ? JSON.stringify(result) + '\n' : describe(result, values['dry-run'] === true));
  return EXIT.ok;
}

interface AthenaValues {
  run?: boolean;
  json?: boolean;
  database?: string;
  workgroup?: string;
  output?: string;
  region?: string;
  endpoint?: string;
  timeout?: string;
  location?: string;
}

/** compact merge --engine athena: the statements printed, or (--run) run and the partitions swapped. */
async function athenaMerge(values: AthenaValues, common: MergeOptions, storage: Storage, catalog: Catalog, io: Io): Promise<number> {
  // Loaded here: they load the Athena client, which no other compaction needs.
  const { athenaMergeScript, planAthenaMerge, runAthenaMerge } = await import('../../compact/athena-merge.ts');
  const { athenaFromFlags } = await import('./athena.ts');
  const options: AthenaMergeOptions = { ...common, database: values.database ?? catalog.database, locationRoot: values.location };
  if (!values.run) {
    const plan = await planAthenaMerge(storage, catalog, options);
    if (values.json) io.stdout.write(JSON.stringify({ runId: plan.runId, partitions: plan.plans.length, statements: plan.staging.flatMap((s) => s.statements) }) + '\n');
    else io.stdout.write(athenaMergeScript(plan));
    return EXIT.ok;
  }
  if (!storage.root.startsWith('s3://')) throw new ConfigError(`compact merge --engine athena --run: the lake ${storage.root} is local; Athena writes to S3, so the lake must be on S3 (--lake s3://bucket/prefix)`);
  if (values.location !== undefined && values.location.replace(/\/+$/, '') !== storage.root) {
    throw new ConfigError(`compact merge --engine athena --run: --location ${values.location} is not the lake ${storage.root}; Athena must write where the lake is`);
  }
  const athena = athenaFromFlags(options.database, values, io);
  // Ctrl-C stops the running statement in Athena; nothing is swapped after it, staging is cleaned up.
  const ac = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => ac.abort(new Error(`interrupted (${signal})`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const result = await runAthenaMerge(storage, catalog, athena, {
      ...options,
      signal: ac.signal,
      onStatement: values.json ? undefined : (s, i, n) => io.stderr.write(`athena: ${i + 1}/${n} ${s.kind} ${s.staging}\n`),
    });
    io.stdout.write(values.json ? JSON.stringify({ ...result, athena: { runId: result.athena.runId, staging: result.athena.staging.map((s) => s.name) } }) + '\n' : describe(result, false));
    return EXIT.ok;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    athena.destroy();
  }
}

function describe(r: MergeResult, dryRun: boolean): string {
  const lines: string[] = [];
  for (const p of r.plans) {
    const files = p.bins.flat().length;
    lines.push(`${dryRun ? 'would merge' : 'planned'}: ${p.table} (${p.values.join(', ')}): ${files} files, ${formatBytes(p.inputBytes)} → ${p.bins.length} file${p.bins.length === 1 ? '' : 's'}; ${p.keep.length} kept`);
  }
  if (dryRun) {
    lines.push(r.plans.length === 0 ? 'nothing to merge' : `dry run: ${r.plans.length} partitions would be merged; nothing changed`);
  } else {
    lines.push(`merged ${r.merged} partitions: ${r.filesIn} files (${formatBytes(r.bytesIn)}) → ${r.filesOut} files (${formatBytes(r.bytesOut)}) in ${r.seconds.toFixed(1)} s; ${r.garbageDeleted} replaced files deleted after their grace period`);
    for (const s of r.skipped) lines.push(`skipped ${s.table} (${s.values.join(', ')}): ${s.reason}`);
  }
  return lines.join('\n') + '\n';
}

async function compactJson(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...LAKE_OPTIONS,
    from: { type: 'string' },
    'target-file-size': { type: 'string' },
    'partition-by': { type: 'string' },
    'dry-run': { type: 'boolean' },
    sample: { type: 'string' },
    json: { type: 'boolean' },
    engine: { type: 'string' },
  });
  if (values.help) {
    io.stdout.write(COMPACT_HELP);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new ConfigError(`compact json: unexpected argument ${JSON.stringify(positionals[0])}`);
  if (values.engine !== undefined && values.engine !== 'duckdb') {
    if (values.engine !== 'athena') badOption('--engine', values.engine, 'duckdb');
    throw new ConfigError(
      'compact json --engine athena: not supported. Conversion must go through the ingest pipeline (validation, dead letters, ' +
        'exactly-once file names and source ranges), which SQL on Athena cannot reproduce; convert with the default engine ' +
        '(it streams S3 inputs one at a time) and rewrite oversized partitions with compact merge --engine athena',
    );
  }
  if (values.from === undefined) throw new ConfigError('compact json: --from DIR|s3://bucket/prefix is required (where the raw JSON to convert is)');
  const settings = await lakeSettings(values, io);
  const { config, lake } = settings;
  const from = isS3Location(values.from) ? values.from : path.resolve(io.cwd, values.from);
  const inputs = await listJsonInputs(from, { env: io.env });
  const bytes = inputs.reduce((a, i) => a + i.bytes, 0);
  const convertOptions = {
    targetFileBytes: parseSize('--target-file-size', values['target-file-size'] ?? config.targetFileSize ?? '512MB'),
    partitionBy: values['partition-by'] ?? config.partitionBy ?? 'dt',
    compression: config.compression,
    tables: config.tables,
    promote: config.promote,
  };
  if (values['dry-run']) {
    const sampleBytes = values.sample === undefined ? undefined : parseSize('--sample', values.sample);
    if (sampleBytes !== undefined && sampleBytes < 1024 * 1024) badOption('--sample', values.sample, 'at least 1MB');
    const { storage, catalog } = await settings.open();
    const plan = await planJsonConversion(storage, catalog, inputs, { ...convertOptions, ...(sampleBytes !== undefined ? { sampleBytes } : {}) });
    io.stdout.write(
      values.json
        ? JSON.stringify({ from: values.from, lake, ...plan, inputFiles: inputs.map((i) => ({ path: i.path, bytes: i.bytes })) }) + '\n'
        : describePlan(plan, inputs, lake),
    );
    return EXIT.ok;
  }
  const { storage, catalog } = await settings.open();
  const progressTty = io.stderr.isTTY === true && !values.json;
  let last = 0;
  const stats = await convertJson(storage, catalog, inputs, {
    ...convertOptions,
    onProgress: progressTty
      ? (s) => {
          if (Date.now() - last < 250) return;
          last = Date.now();
          io.stderr.write(`\r\x1b[K${progressLine(s)}`);
        }
      : undefined,
  });
  if (progressTty) io.stderr.write('\r\x1b[K');
  if (values.json) {
    const { read, written, deadLettered, skipped, files, bytes: out, seconds } = stats;
    io.stdout.write(JSON.stringify({ inputs: inputs.length, inputBytes: bytes, read, written, deadLettered, skipped, files, bytes: out, seconds }) + '\n');
  } else {
    io.stdout.write(`converted ${inputs.length} files (${formatBytes(bytes)}, ${(bytes / 1e6 / Math.max(stats.seconds, 0.001)).toFixed(1)} MB/s)\n` + summary(stats, lake));
  }
  return EXIT.ok;
}

/** Most partitions a text plan lists one by one. */
const PLAN_LINES = 40;

function describePlan(p: JsonPlan, inputs: JsonInput[], lake: string): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const approx = p.exact ? '' : '~';
  const lines = inputs.slice(0, PLAN_LINES).map((i) => `would convert ${i.path} (${formatBytes(i.bytes)})`);
  if (inputs.length > PLAN_LINES) lines.push(`... and ${n(inputs.length - PLAN_LINES)} more input files`);
  lines.push(
    p.exact
      ? `plan: ${n(p.inputs)} input file${p.inputs === 1 ? '' : 's'} (${formatBytes(p.inputBytes)}), all read: the counts are exact`
      : `plan: ${n(p.inputs)} input file${p.inputs === 1 ? '' : 's'} (${formatBytes(p.inputBytes)}); estimated from ${n(p.sampledInputs)} of them (${formatBytes(p.sampledBytes)} read), ` +
        'partitions only in inputs not read are missing',
  );
  for (const q of p.partitions.slice(0, PLAN_LINES)) {
    lines.push(`  ${q.table} (${q.values.join(', ')}): ${approx}${n(q.events)} events → ${q.files} file${q.files === 1 ? '' : 's'}, ~${formatBytes(q.parquetBytes)}`);
  }
  if (p.partitions.length > PLAN_LINES) lines.push(`  ... and ${n(p.partitions.length - PLAN_LINES)} more partitions`);
  lines.push(
    `dry run: ${approx}${n(p.events)} events (${approx}${n(p.invalid)} invalid, to the dead letters; ${approx}${n(p.alreadyInLake)} already in the lake) → ` +
      `${p.files} file${p.files === 1 ? '' : 's'} (~${formatBytes(p.parquetBytes)}) in ${n(p.partitions.length)} partitions of ${lake}; nothing changed`,
  );
  return lines.join('\n') + '\n';
}
