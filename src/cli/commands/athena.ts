import { AthenaQuery } from '../../athena/athena-query.ts';
import { athenaDdl } from '../../athena/ddl.ts';
import { badOption, ConfigError } from '../../errors.ts';
import { formatBytes, parseDuration } from '../../units.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, type Io } from '../args.ts';
import { FORMATS, formatResult, type Format } from '../format.ts';

export const ATHENA_HELP = `tributary athena ddl [--lake DIR|s3://…] [--location s3://bucket/prefix] [--database NAME] [--projection]
tributary athena query "<SQL>" [--database NAME] [--workgroup NAME] [--output s3://bucket/prefix/]
                       [--region REGION] [--endpoint URL] [--format table|json|csv|ndjson] [--timeout 30m] [--verbose]

ddl prints Athena DDL for the lake's tables: CREATE EXTERNAL TABLE (Parquet, Hive partitions, LOCATION)
and ALTER TABLE … ADD PARTITION … LOCATION for every registered partition at its current location.
--location is the S3 root the lake is at (default: the lake itself when it is on S3).
--projection uses partition projection instead (no registration; but its fixed location template
cannot follow compaction's generation swaps, so use it only on lakes that are not compacted).

query runs SQL (Athena's dialect) on Amazon Athena and prints the rows as \`tributary query\` does.
--database is the database unqualified table names resolve in; --workgroup defaults to primary;
--output is the S3 location for result files (default: the workgroup's). Credentials and region come
from the usual AWS sources (AWS_REGION, profiles); the endpoint from --endpoint, else
AWS_ENDPOINT_URL_ATHENA / AWS_ENDPOINT_URL. A failed query exits 1 with Athena's reason; Ctrl-C stops
the query in Athena. --verbose prints the query id and the bytes Athena scanned on stderr.
Use - to read the SQL from standard input.
`;

const QUERY_ONLY = ['workgroup', 'output', 'region', 'endpoint', 'format', 'timeout', 'verbose'] as const;
const DDL_ONLY = ['lake', 'catalog', 'config', 'location', 'projection', 'projection-start'] as const;

export async function athenaCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...LAKE_OPTIONS,
    location: { type: 'string' },
    database: { type: 'string' },
    projection: { type: 'boolean' },
    'projection-start': { type: 'string' },
    workgroup: { type: 'string' },
    output: { type: 'string' },
    region: { type: 'string' },
    endpoint: { type: 'string' },
    format: { type: 'string', short: 'f' },
    timeout: { type: 'string' },
    verbose: { type: 'boolean', short: 'v' },
  });
  const [sub, ...extra] = positionals;
  if (values.help || sub === undefined) {
    io.stdout.write(ATHENA_HELP);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  const given = (names: readonly string[]) => names.filter((n) => (values as Record<string, unknown>)[n] !== undefined);
  if (sub === 'query') {
    const wrong = given(DDL_ONLY);
    if (wrong.length > 0) throw new ConfigError(`athena query: --${wrong[0]} applies to athena ddl, not query`);
    return athenaQueryCommand(extra, values, io);
  }
  if (sub !== 'ddl') throw new ConfigError(`athena: unknown action ${JSON.stringify(sub)}; available: ddl, query`);
  const wrong = given(QUERY_ONLY);
  if (wrong.length > 0) throw new ConfigError(`athena ddl: --${wrong[0]} applies to athena query, not ddl`);
  if (extra.length > 0) throw new ConfigError(`athena ddl: unexpected argument ${JSON.stringify(extra[0])}`);
  const settings = await lakeSettings(values, io);
  const { storage, catalog } = await settings.open();
  const locationRoot = values.location ?? (storage.root.startsWith('s3://') ? storage.root : undefined);
  if (locationRoot === undefined) throw new ConfigError(`athena ddl: the lake ${storage.root} is local; give --location s3://bucket/prefix where it is (or will be) synced`);
  io.stdout.write(await athenaDdl(catalog, { database: values.database ?? catalog.database, locationRoot, projection: values.projection, projectionStart: values['projection-start'] }));
  return EXIT.ok;
}

interface QueryValues {
  database?: string;
  workgroup?: string;
  output?: string;
  region?: string;
  endpoint?: string;
  format?: string;
  timeout?: string;
  verbose?: boolean;
}

async function athenaQueryCommand(positionals: string[], values: QueryValues, io: Io): Promise<number> {
  const format = (values.format ?? 'table') as Format;
  if (!FORMATS.includes(format)) badOption('--format', values.format, FORMATS.join(', '));
  if (positionals.length !== 1) throw new ConfigError(`athena query: expected one SQL statement (quoted), got ${positionals.length} arguments`);
  let sql = positionals[0]!;
  if (sql === '-') {
    const chunks: Buffer[] = [];
    for await (const c of io.stdin) chunks.push(Buffer.from(c as Buffer));
    sql = Buffer.concat(chunks).toString('utf8');
  }
  const athena = athenaFromFlags(values.database, values, io);
  // Ctrl-C stops the query in Athena too (it would otherwise run on, and be billed, to the end).
  const ac = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => ac.abort(new Error(`interrupted (${signal})`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const result = await athena.run(sql, { signal: ac.signal });
    if (values.verbose) {
      const scanned = result.dataScannedBytes === undefined ? 'unknown' : formatBytes(result.dataScannedBytes);
      io.stderr.write(`athena: query ${result.queryExecutionId} SUCCEEDED: ${result.rows.length} rows, ${scanned} scanned${result.engineMs === undefined ? '' : `, ${result.engineMs} ms in the engine`}\n`);
    }
    io.stdout.write(formatResult(result, format));
    return EXIT.ok;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    athena.destroy();
  }
}

/** The Athena runner the --workgroup, --output, --region, --endpoint and --timeout flags describe (standard AWS variables beneath them). */
export function athenaFromFlags(
  database: string | undefined,
  values: { workgroup?: string; output?: string; region?: string; endpoint?: string; timeout?: string },
  io: Io,
): AthenaQuery {
  return new AthenaQuery({
    database,
    workGroup: values.workgroup,
    outputLocation: values.output,
    region: values.region ?? (io.env.AWS_REGION || undefined),
    endpoint: values.endpoint ?? (io.env.AWS_ENDPOINT_URL_ATHENA || io.env.AWS_ENDPOINT_URL || undefined),
    timeoutMs: values.timeout === undefined ? undefined : parseDuration('--timeout', values.timeout),
  });
}
