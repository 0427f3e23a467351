import * as path from 'node:path';
import { runMerge, type MergeResult } from '../../compact/merge.ts';
import { ConfigError } from '../../errors.ts';
import { openLocalLake } from '../../lake.ts';
import { formatBytes, parseDuration, parseSize } from '../../units.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, type Io } from '../args.ts';

export const COMPACT_HELP = `tributary compact merge [options]

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
`;

export async function compactCommand(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    io.stdout.write(COMPACT_HELP);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  if (sub !== 'merge') throw new ConfigError(`compact: unknown job ${JSON.stringify(sub)}; available: merge (json conversion is not built yet)`);
  const { values, positionals } = parse(rest, {
    ...LAKE_OPTIONS,
    table: { type: 'string' },
    'older-than': { type: 'string' },
    'small-file-size': { type: 'string' },
    'target-file-size': { type: 'string' },
    grace: { type: 'string' },
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    io.stdout.write(COMPACT_HELP);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new ConfigError(`compact merge: unexpected argument ${JSON.stringify(positionals[0])}`);
  const { config, lake } = await lakeSettings(values, io);
  const { storage, catalog } = openLocalLake(path.resolve(io.cwd, lake));
  const progressTty = io.stderr.isTTY === true && !values.json;
  const started = Date.now();
  const result = await runMerge(storage, catalog, {
    table: values.table,
    olderThanMs: values['older-than'] === undefined ? undefined : parseDuration('--older-than', values['older-than']),
    smallFileBytes: values['small-file-size'] === undefined ? undefined : parseSize('--small-file-size', values['small-file-size']),
    targetFileBytes: parseSize('--target-file-size', values['target-file-size'] ?? config.targetFileSize ?? '512MB'),
    graceMs: values.grace === undefined ? undefined : parseDuration('--grace', values.grace),
    dryRun: values['dry-run'],
    compression: config.compression,
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
