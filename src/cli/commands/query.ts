import * as path from 'node:path';
import { LakeQuery, type QueryResult } from '../../query/lake-query.ts';
import { FileCache } from '../../storage/file-cache.ts';
import { formatBytes } from '../../units.ts';
import { fetchLiveQuery } from '../../query/query-endpoint.ts';
import { ConfigError, badOption, type TributaryError } from '../../errors.ts';
import { FORMATS, formatResult, type Format } from '../format.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, type Io } from '../args.ts';
import { lakeSession, runRepl, statelessSession, type ReplSession } from '../repl.ts';

export const QUERY_HELP = `tributary query [--lake DIR|s3://… | --live URL --write-key KEY] [--format table|json|csv|ndjson]
                [--views DIR] [--watch SECONDS] [--cache-dir DIR] [--cache-max-bytes SIZE] [--whole-files] [--verbose] ["<SQL>"]

Runs SQL (DuckDB dialect) over the lake's committed files. Each table is a view; the views in
views/ (experiment_results, experiment_significance) and in --views directories are registered
too. With --live, the SQL runs in a running \`tributary dev\` over committed files ∪ rows not
flushed yet, from one snapshot. --watch re-runs it every SECONDS and redraws. Use - to read the
SQL from standard input.

Without SQL it is an interactive shell: statements end with ';' and may span lines; .tables,
.schema NAME, .format, .timer on|off, .refresh (read the catalog again), .read FILE, .quit; history
in $TRIBUTARY_HISTORY (default ~/.tributary_history; empty: none). A table is read as of the first
statement that uses it, so temporary tables and views you create stay consistent with it. Piped
input runs each statement in turn and stops at the first error (exit 1).

A lake on S3 is read through a local cache of the files the query needs, keyed by their ETags: the
files of the tables it reads that its filters on partition columns (dt, event, hour) keep (of the
others only the footer), and in them the row groups its filters on text and timestamp columns
(event = '...') may match, by their statistics. Of those only the columns the statement names are fetched (the footer
and those column chunks, by range reads, into a partial copy that grows when a later statement
needs more); a statement that reads columns it does not name (SELECT * over a table, DESCRIBE,
PIVOT, ...) or most of a file gets whole files, as does --whole-files (to fill the cache for later,
offline use). --cache-dir (default
$TRIBUTARY_CACHE, else ~/.cache/tributary or the OS's cache directory) and --cache-max-bytes
(default $TRIBUTARY_CACHE_MAX_BYTES, else 10GiB; least recently used copies go first, never one a
running query reads). --verbose reports cache hits, misses and bytes fetched on standard error.
`;

export async function queryCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...LAKE_OPTIONS,
    format: { type: 'string', short: 'f' },
    views: { type: 'string', multiple: true },
    live: { type: 'string' },
    'write-key': { type: 'string' },
    watch: { type: 'string' },
    'cache-dir': { type: 'string' },
    'cache-max-bytes': { type: 'string' },
    'whole-files': { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v' },
  });
  if (values.help) {
    io.stdout.write(QUERY_HELP);
    return EXIT.ok;
  }
  const format = (values.format ?? 'table') as Format;
  if (!FORMATS.includes(format)) badOption('--format', values.format, FORMATS.join(', '));
  if (positionals.length > 1) throw new ConfigError(`query: expected one SQL statement (quoted), got ${positionals.length} arguments`);
  const interactive = positionals.length === 0;
  if (interactive && values.watch !== undefined) throw new ConfigError('query: --watch needs a SQL statement to re-run');
  let sql = positionals[0] ?? '';
  if (sql === '-') {
    const chunks: Buffer[] = [];
    for await (const c of io.stdin) chunks.push(Buffer.from(c as Buffer));
    sql = Buffer.concat(chunks).toString('utf8');
  }
  const watch = values.watch === undefined ? null : Number(values.watch);
  if (watch !== null && !(watch >= 0.2 && watch <= 86_400)) badOption('--watch', values.watch, 'seconds between runs, from 0.2 to 86400');
  let run: () => Promise<QueryResult>;
  let cache: FileCache | undefined;
  let session: ReplSession | undefined;
  if (values.live !== undefined) {
    if (values.lake !== undefined) throw new ConfigError('query: give --lake or --live, not both');
    if (values['cache-dir'] !== undefined || values['cache-max-bytes'] !== undefined || values['whole-files']) throw new ConfigError('query: --cache-dir, --cache-max-bytes and --whole-files apply to --lake queries');
    const key = values['write-key'] ?? (io.env.TRIBUTARY_WRITE_KEY || undefined);
    if (key === undefined) throw new ConfigError('query --live: --write-key is required (the key tributary dev was started with)');
    try {
      new URL(values.live);
    } catch {
      badOption('--live', values.live, 'the URL of a running tributary dev, e.g. http://127.0.0.1:8088');
    }
    run = () => fetchLiveQuery(values.live!, key, sql);
    if (interactive) session = statelessSession((text) => fetchLiveQuery(values.live!, key, text));
  } else {
    if (values.views !== undefined && values.live !== undefined) throw new ConfigError('query: --views applies to --lake queries');
    const settings = await lakeSettings(values, io);
    const { config } = settings;
    const { storage, catalog } = await settings.open();
    const viewDirs = [...(config.views ?? []), ...(values.views ?? [])].map((d) => path.resolve(io.cwd, d));
    const lakeCache = new FileCache(storage, {
      dir: values['cache-dir'] === undefined ? undefined : path.resolve(io.cwd, values['cache-dir']),
      maxBytes: values['cache-max-bytes'],
      env: io.env,
    });
    cache = lakeCache;
    const projection = values['whole-files'] !== true;
    if (interactive) session = await lakeSession(() => LakeQuery.open(storage, catalog, { viewDirs, cache: lakeCache, projection }));
    run = async () => {
      const q = await LakeQuery.open(storage, catalog, { viewDirs, cache: lakeCache, projection });
      try {
        return await q.query(sql);
      } finally {
        q.close();
      }
    };
  }
  const report = async () => {
    if (values.verbose && cache !== undefined) io.stderr.write(await cacheReport(cache));
  };
  if (session !== undefined) {
    const inner = session;
    return runRepl({ ...inner, run: async (text) => {
      const r = await inner.run(text);
      await report();
      return r;
    } }, io, format);
  }
  if (watch === null) {
    const result = await run();
    await report();
    io.stdout.write(formatResult(result, format));
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
        await report();
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

/** One line for --verbose: what the cache did for this query, and what it holds. */
async function cacheReport(cache: FileCache): Promise<string> {
  if (cache.inPlace) return 'cache: not used (the lake is a local directory; its files are read in place)\n';
  const s = cache.stats;
  const usage = await cache.usage();
  const evicted = s.evictedFiles > 0 ? `; evicted ${s.evictedFiles} (${formatBytes(s.evictedBytes)})` : '';
  const stale = s.staleRemoved > 0 ? `; ${s.staleRemoved} stale cop${s.staleRemoved === 1 ? 'y' : 'ies'} removed` : '';
  return `cache: ${s.hits} hit${s.hits === 1 ? '' : 's'}, ${s.misses} miss${s.misses === 1 ? '' : 'es'}, ${formatBytes(s.bytesFetched)} fetched${evicted}${stale}; ${cache.dir} holds ${formatBytes(usage.bytes)} of ${formatBytes(cache.maxBytes)}\n`;
}
