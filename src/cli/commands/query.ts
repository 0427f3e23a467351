import * as path from 'node:path';
import { openLocalLake } from '../../lake.ts';
import { LakeQuery } from '../../query/lake-query.ts';
import { ConfigError, badOption } from '../../errors.ts';
import { FORMATS, formatResult, type Format } from '../format.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, type Io } from '../args.ts';

export const QUERY_HELP = `tributary query [--lake DIR] [--format table|json|csv|ndjson] [--views DIR] "<SQL>"

Runs SQL (DuckDB dialect) over the lake's committed files. Each table is a view; the views in
views/ (experiment_results, ...) and in --views directories are registered too. Use - to read
the SQL from standard input.
`;

export async function queryCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, { ...LAKE_OPTIONS, format: { type: 'string', short: 'f' }, views: { type: 'string', multiple: true } });
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
  const { config, lake } = await lakeSettings(values, io);
  const { storage, catalog } = openLocalLake(path.resolve(io.cwd, lake));
  const viewDirs = [...(config.views ?? []), ...(values.views ?? [])].map((d) => path.resolve(io.cwd, d));
  const q = await LakeQuery.open(storage, catalog, { viewDirs });
  try {
    io.stdout.write(formatResult(await q.query(sql), format));
  } finally {
    q.close();
  }
  return EXIT.ok;
}
