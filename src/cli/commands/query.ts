import * as path from 'node:path';
import { LakeQuery, type QueryResult } from '../../query/lake-query.ts';
import { fetchLiveQuery } from '../../query/query-endpoint.ts';
import { ConfigError, badOption, type TributaryError } from '../../errors.ts';
import { FORMATS, formatResult, type Format } from '../format.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, type Io } from '../args.ts';

export const QUERY_HELP = `tributary query [--lake DIR | --live URL --write-key KEY] [--format table|json|csv|ndjson]
                [--views DIR] [--watch SECONDS] "<SQL>"

Runs SQL (DuckDB dialect) over the lake's committed files. Each table is a view; the views in
views/ (experiment_results, experiment_significance) and in --views directories are registered
too. With --live, the SQL runs in a running \`tributary dev\` over committed files ∪ rows not
flushed yet, from one snapshot. --watch re-runs it every SECONDS and redraws. Use - to read the
SQL from standard input.
`;

export async function queryCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...LAKE_OPTIONS,
    format: { type: 'string', short: 'f' },
    views: { type: 'string', multiple: true },
    live: { type: 'string' },
    'write-key': { type: 'string' },
    watch: { type: 'string' },
  });
  if (values.help) {
    io.stdout.write(QUERY_HELP);
    return EXIT.ok;
  }
  const format = (values.format ?? 'table') as Format;
  if (!FORMATS.includes(format)) badOption('--format', values.format, FORMATS.join(', '));
  if (positionals.length !== 1) throw new ConfigError(`query: expected one SQL statement (quoted), got ${positionals.length} arguments`);
  let sql = positionals[0]!;
  if (sql === '-') {
    const chunks: Buffer[] = [];
    for await (const c of io.stdin) chunks.push(Buffer.from(c as Buffer));
    sql = Buffer.concat(chunks).toString('utf8');
  }
  const watch = values.watch === undefined ? null : Number(values.watch);
  if (watch !== null && !(watch >= 0.2 && watch <= 86_400)) badOption('--watch', values.watch, 'seconds between runs, from 0.2 to 86400');
  let run: () => Promise<QueryResult>;
  if (values.live !== undefined) {
    if (values.lake !== undefined) throw new ConfigError('query: give --lake or --live, not both');
    const key = values['write-key'] ?? (io.env.TRIBUTARY_WRITE_KEY || undefined);
    if (key === undefined) throw new ConfigError('query --live: --write-key is required (the key tributary dev was started with)');
    try {
      new URL(values.live);
    } catch {
      badOption('--live', values.live, 'the URL of a running tributary dev, e.g. http://127.0.0.1:8088');
    }
    run = () => fetchLiveQuery(values.live!, key, sql);
  } else {
    if (values.views !== undefined && values.live !== undefined) throw new ConfigError('query: --views applies to --lake queries');
    const settings = await lakeSettings(values, io);
    const { config } = settings;
    const { storage, catalog } = settings.open();
    const viewDirs = [...(config.views ?? []), ...(values.views ?? [])].map((d) => path.resolve(io.cwd, d));
    run = async () => {
      const q = await LakeQuery.open(storage, catalog, { viewDirs });
      try {
        return await q.query(sql);
      } finally {
        q.close();
      }
    };
  }
  if (watch === null) {
    io.stdout.write(formatResult(await run(), format));
    return EXIT.ok;
  }
  // The `watch psql ...` habit: redraw every N seconds until interrupted.
  let stop = false;
  const onSignal = () => (stop = true);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    while (!stop) {
      const started = Date.now();
      let out: string;
      try {
        out = formatResult(await run(), format);
      } catch (err) {
        if (!(err as TributaryError).retriable) throw err;
        out = `(${(err as Error).message}; retrying)\n`;
      }
      const clear = io.stdout.isTTY ? '\x1b[2J\x1b[H' : '';
      io.stdout.write(`${clear}Every ${watch}s: ${sql.replace(/\s+/g, ' ').slice(0, 100)}    ${new Date().toISOString()}\n\n${out}`);
      while (!stop && Date.now() - started < watch * 1000) await new Promise((r) => setTimeout(r, Math.min(100, watch * 1000)));
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return EXIT.ok;
}
