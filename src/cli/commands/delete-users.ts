import * as path from 'node:path';
import { deleteUsers, readIdsFile, type DeleteUsersResult } from '../../compact/delete-users.ts';
import { ConfigError } from '../../errors.ts';
import { parseDuration } from '../../units.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, withPartitionProgress, type Io } from '../args.ts';

export const DELETE_USERS_HELP = `tributary delete-users [options] --user-id ID ... | --anonymous-id ID ... | --ids-file FILE

Deletes every event of the given users from the lake (a GDPR/CCPA erasure): each partition holding
any of their rows gets a new generation in which the files holding them are rewritten without them
and the others are carried over; the catalog swaps it in one versioned step, safely while ingest and
queries run (as compact merge does). Rewritten files keep their names and source ranges, so
re-ingesting the same input does not bring the rows back. Dead letters naming the ids are removed.

  --user-id ID             a userId (rows whose user_id, or an alias's previous_id, is it); repeatable
  --anonymous-id ID        an anonymousId (anonymous_id, or an alias's previous_id); repeatable
  --ids-file FILE          more ids, one per line: "user:ID" or "anonymous:ID" (a bare ID is a userId)
  --table NAME             only this table
  --grace DURATION         how long replaced files stay readable for queries already running
                           (default 0: deleted before this command returns; with a grace, by the
                           first delete-users or compact merge run after it)
  --dry-run                count the rows and dead letters that would go, change nothing
  --json                   print the result as one JSON object
  --lake DIR               lake directory (default $TRIBUTARY_LAKE, else ./lake)

Rows still in a running ingest's spools are not reached: run it again once they are committed.
`;

export async function deleteUsersCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...LAKE_OPTIONS,
    'user-id': { type: 'string', multiple: true },
    'anonymous-id': { type: 'string', multiple: true },
    'ids-file': { type: 'string' },
    table: { type: 'string' },
    grace: { type: 'string' },
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    io.stdout.write(DELETE_USERS_HELP);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new ConfigError(`delete-users: unexpected argument ${JSON.stringify(positionals[0])}; give ids with --user-id or --anonymous-id`);
  const userIds = [...(values['user-id'] ?? [])];
  const anonymousIds = [...(values['anonymous-id'] ?? [])];
  if (values['ids-file'] !== undefined) {
    let more: Awaited<ReturnType<typeof readIdsFile>>;
    try {
      more = await readIdsFile(path.resolve(io.cwd, values['ids-file']));
    } catch (err) {
      throw new ConfigError(`--ids-file: ${(err as Error).message}`, { cause: err });
    }
    userIds.push(...more.userIds);
    anonymousIds.push(...more.anonymousIds);
  }
  if (userIds.length + anonymousIds.length === 0) throw new ConfigError('delete-users: no ids given (--user-id, --anonymous-id or --ids-file)');
  const settings = await lakeSettings(values, io);
  const { storage, catalog } = await settings.open();
  const result: DeleteUsersResult = await withPartitionProgress(io, values.json, 'delete-users', (onProgress) =>
    deleteUsers(storage, catalog, {
      userIds,
      anonymousIds,
      table: values.table,
      graceMs: values.grace === undefined ? undefined : parseDuration('--grace', values.grace),
      dryRun: values['dry-run'],
      onProgress,
    }),
  );
  if (values.json) {
    io.stdout.write(JSON.stringify(result) + '\n');
    return result.skipped.length > 0 ? EXIT.failure : EXIT.ok;
  }
  const n = (x: number) => x.toLocaleString('en-US');
  const total = Object.values(result.rows).reduce((a, b) => a + b, 0);
  const per = Object.entries(result.rows).map(([t, r]) => `${t} ${n(r)}`).join(', ');
  const out: string[] = [];
  if (values['dry-run']) out.push(`would delete ${n(total)} rows${per ? ` (${per})` : ''} and ${n(result.deadLetters)} dead letters; nothing changed`);
  else {
    out.push(`deleted ${n(total)} rows${per ? ` (${per})` : ''}: ${n(result.files)} files rewritten in ${n(result.partitions)} partitions; ${n(result.deadLetters)} dead letters removed; ${n(result.garbageDeleted)} replaced files deleted (${result.seconds.toFixed(1)} s)`);
    for (const s of result.skipped) out.push(`  skipped ${s.table} ${s.values.join('/')}: ${s.reason} (run again)`);
  }
  io.stdout.write(out.join('\n') + '\n');
  return result.skipped.length > 0 ? EXIT.failure : EXIT.ok;
}
