import { expirePartitions, type ExpireResult } from '../../compact/expire.ts';
import { ConfigError } from '../../errors.ts';
import { formatBytes, parseDuration } from '../../units.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, withPartitionProgress, type Io } from '../args.ts';

export const EXPIRE_HELP = `tributary expire --older-than DURATION | --before DATE [options]

Deletes old data (retention): every partition whose day (or hour, with --partition-by dt,hour) ended
more than --older-than ago (e.g. 90d), or at or before --before (YYYY-MM-DD, UTC), is dropped from the
catalog and its files deleted, safely while ingest and queries run: each partition is dropped under
its compaction lock and only if no compaction moved it meanwhile (else it is left for the next run).
Dead letters and raw copies of those days go too. Tables not partitioned by dt are left alone and named.

  --older-than DURATION    retention: 90d, 36h, ... (at least 1h)
  --before DATE            expire the days before DATE (YYYY-MM-DD) or before an ISO 8601 instant
  --table NAME             only this table
  --keep-dead-letters      leave _deadletter/ alone
  --keep-raw               leave _raw/ (ingest --raw-copy) alone
  --grace DURATION         how long the dropped files stay readable for queries already running
                           (default 0: deleted before this command returns; with a grace, by the
                           first expire, compact merge or delete-users run after it)
  --dry-run                list what would go, change nothing
  --json                   print the result as one JSON object
  --lake DIR               lake directory (default $TRIBUTARY_LAKE, else ./lake)

A late event for an expired day that ingest receives afterwards is kept, in the partition registered
again; the next run expires it. With the embedded catalog mirrored into Glue, run
\`tributary catalog sync --prune\` afterwards so that Athena drops the partitions too.
`;

export async function expireCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...LAKE_OPTIONS,
    'older-than': { type: 'string' },
    before: { type: 'string' },
    table: { type: 'string' },
    'keep-dead-letters': { type: 'boolean' },
    'keep-raw': { type: 'boolean' },
    grace: { type: 'string' },
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    io.stdout.write(EXPIRE_HELP);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new ConfigError(`expire: unexpected argument ${JSON.stringify(positionals[0])}; give --older-than or --before`);
  if ((values['older-than'] === undefined) === (values.before === undefined)) throw new ConfigError('expire: give one of --older-than DURATION (e.g. 90d) and --before DATE');
  const olderThanMs = values['older-than'] === undefined ? undefined : parseDuration('--older-than', values['older-than']);
  const graceMs = values.grace === undefined ? undefined : parseDuration('--grace', values.grace);
  const settings = await lakeSettings(values, io);
  const { storage, catalog } = await settings.open();
  const result: ExpireResult = await withPartitionProgress(io, values.json, 'expire', (onProgress) =>
    expirePartitions(storage, catalog, {
      olderThanMs,
      before: values.before,
      table: values.table,
      graceMs,
      deadLetters: !values['keep-dead-letters'],
      rawCopies: !values['keep-raw'],
      dryRun: values['dry-run'],
      onProgress,
    }),
  );
  if (values.json) {
    io.stdout.write(JSON.stringify(result) + '\n');
    return result.skipped.length > 0 ? EXIT.failure : EXIT.ok;
  }
  const n = (x: number) => x.toLocaleString('en-US');
  const out: string[] = [];
  const what = `${n(result.partitions.length)} partitions before ${result.cutoff} (${n(result.files)} files, ${formatBytes(result.bytes)}), ${n(result.deadLetterFiles)} dead-letter files, ${n(result.rawFiles)} raw-copy files and ${n(result.orphans)} unregistered files`;
  if (values['dry-run']) {
    out.push(`would expire ${what}; nothing changed`);
    for (const p of result.partitions) out.push(`  ${p.table} ${p.values.join('/')}: ${n(p.files)} files, ${formatBytes(p.bytes)}`);
  } else {
    out.push(`expired ${what}; ${n(result.garbageDeleted)} files deleted (${result.seconds.toFixed(1)} s)`);
    for (const s of result.skipped) out.push(`  skipped ${s.table} ${s.values.join('/')}: ${s.reason} (run again)`);
  }
  if (result.tablesWithoutDt.length > 0) out.push(`  left alone (not partitioned by dt): ${result.tablesWithoutDt.join(', ')}`);
  io.stdout.write(out.join('\n') + '\n');
  return result.skipped.length > 0 ? EXIT.failure : EXIT.ok;
}
