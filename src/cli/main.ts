import { ConfigError, TributaryError } from '../errors.ts';
import { EXIT, type Io } from './args.ts';
import { athenaCommand } from './commands/athena.ts';
import { catalogCommand } from './commands/catalog.ts';
import { compactCommand } from './commands/compact.ts';
import { demoCommand } from './commands/demo.ts';
import { devCommand } from './commands/dev.ts';
import { ingestCommand } from './commands/ingest.ts';
import { jobsCommand } from './commands/jobs.ts';
import { queryCommand } from './commands/query.ts';
import { tablesCommand } from './commands/tables.ts';

const HELP = `tributary — Segment events into a Parquet lake (Athena-ready), queried with DuckDB

Commands:
  ingest <file ...|->   read NDJSON Segment events into the lake
  query "<SQL>"         run SQL over the lake's committed files
  tables                list tables, columns, partitions and files
  compact json          convert raw JSON history (Segment's S3 layout too) to Parquet
  compact merge         merge small files into target-size ones (safe beside ingest and queries)
  jobs list|run|schedule  scheduled jobs from jobs/*.ts and tributary.jobs.json
  athena ddl            Athena CREATE EXTERNAL TABLE / ADD PARTITION statements for the lake
  athena query "<SQL>"  run SQL on Amazon Athena, printed like query
  catalog ls|sync       list the catalog; mirror the embedded catalog into Glue
  dev                   collector + local log + consumer + live queries in one process
  demo                  generate sample events, ingest them and show the A/B-test results

Common options: --lake DIR (default $TRIBUTARY_LAKE, else ./lake), --config FILE, --help
Exit codes: 0 ok, 1 runtime failure, 2 bad usage.
`;

const COMMANDS: Record<string, (argv: string[], io: Io) => Promise<number>> = {
  ingest: ingestCommand,
  query: queryCommand,
  tables: tablesCommand,
  demo: demoCommand,
  compact: compactCommand,
  jobs: jobsCommand,
  dev: devCommand,
  athena: athenaCommand,
  catalog: catalogCommand,
};

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, cwd: process.cwd() }): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    io.stdout.write(HELP);
    return cmd === undefined ? EXIT.usage : EXIT.ok;
  }
  const run = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined; // not `constructor` or `toString`
  if (run === undefined) {
    io.stderr.write(`tributary: unknown command ${JSON.stringify(cmd)}; commands: ${Object.keys(COMMANDS).join(', ')}\n`);
    return EXIT.usage;
  }
  try {
    return await run(rest, io);
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
