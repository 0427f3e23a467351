import { ConfigError, TributaryError } from '../errors.ts';
import { EXIT, type Io } from './args.ts';

const HELP = `tributary — Segment events into a Parquet lake (Athena-ready), queried with DuckDB

Commands:
  ingest <file ...|->   read NDJSON Segment events into the lake
  query ["<SQL>"]       run SQL over the lake's committed files (without SQL: a shell)
  tables                list tables, columns, partitions and files
  compact json          convert raw JSON history (Segment's S3 layout too) to Parquet
  compact merge         merge small files into target-size ones (safe beside ingest and queries)
  jobs list|run|schedule  scheduled jobs from jobs/*.ts and tributary.jobs.json
  athena ddl            Athena CREATE EXTERNAL TABLE / ADD PARTITION statements for the lake
  athena query "<SQL>"  run SQL on Amazon Athena, printed like query
  catalog ls|sync       list the catalog; mirror the embedded catalog into Glue
  verify <file ...|->   check that an input's events are all in the lake, each once
  delete-users          delete every event of given users (GDPR erasure), safe beside ingest
  expire                drop partitions older than a retention (90d), safe beside ingest
  dev                   collector + local log + consumer + live queries in one process
  demo                  generate sample events, ingest them and show the A/B-test results

Common options: --lake DIR (default $TRIBUTARY_LAKE, else ./lake), --config FILE, --help
Exit codes: 0 ok, 1 runtime failure, 2 bad usage.
`;

type Command = (argv: string[], io: Io) => Promise<number>;

/** Each command's module, loaded when run: a command loads only what it uses (a local query does not load the AWS SDK). */
const COMMANDS: Record<string, () => Promise<Command>> = {
  ingest: async () => (await import('./commands/ingest.ts')).ingestCommand,
  query: async () => (await import('./commands/query.ts')).queryCommand,
  tables: async () => (await import('./commands/tables.ts')).tablesCommand,
  demo: async () => (await import('./commands/demo.ts')).demoCommand,
  compact: async () => (await import('./commands/compact.ts')).compactCommand,
  jobs: async () => (await import('./commands/jobs.ts')).jobsCommand,
  dev: async () => (await import('./commands/dev.ts')).devCommand,
  athena: async () => (await import('./commands/athena.ts')).athenaCommand,
  catalog: async () => (await import('./commands/catalog.ts')).catalogCommand,
  verify: async () => (await import('./commands/verify.ts')).verifyCommand,
  'delete-users': async () => (await import('./commands/delete-users.ts')).deleteUsersCommand,
  expire: async () => (await import('./commands/expire.ts')).expireCommand,
};

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, cwd: process.cwd() }): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    io.stdout.write(HELP);
    return cmd === undefined ? EXIT.usage : EXIT.ok;
  }
  const load = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined; // not `constructor` or `toString`
  if (load === undefined) {
    io.stderr.write(`tributary: unknown command ${JSON.stringify(cmd)}; commands: ${Object.keys(COMMANDS).join(', ')}\n`);
    return EXIT.usage;
  }
  try {
    return await (await load())(rest, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(`tributary ${cmd}: ${err.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof TributaryError) {
      io.stderr.write(`tributary ${cmd}: ${err.message}\n`);
      if (io.env.TRIBUTARY_DEBUG) io.stderr.write(`${err.stack}\n`);
      return EXIT.failure;
    }
    io.stderr.write(`tributary ${cmd}: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return EXIT.failure;
  }
}
