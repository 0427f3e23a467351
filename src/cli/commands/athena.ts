import { athenaDdl } from '../../athena/ddl.ts';
import { ConfigError } from '../../errors.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, type Io } from '../args.ts';

export const ATHENA_HELP = `tributary athena ddl [--lake DIR|s3://…] [--location s3://bucket/prefix] [--database NAME] [--projection]

Prints Athena DDL for the lake's tables: CREATE EXTERNAL TABLE (Parquet, Hive partitions, LOCATION)
and ALTER TABLE … ADD PARTITION … LOCATION for every registered partition at its current location.
--location is the S3 root the lake is at (default: the lake itself when it is on S3).
--projection uses partition projection instead (no registration; but its fixed location template
cannot follow compaction's generation swaps, so use it only on lakes that are not compacted).
`;

export async function athenaCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, { ...LAKE_OPTIONS, location: { type: 'string' }, database: { type: 'string' }, projection: { type: 'boolean' }, 'projection-start': { type: 'string' } });
  const [sub, ...extra] = positionals;
  if (values.help || sub === undefined) {
    io.stdout.write(ATHENA_HELP);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  if (sub !== 'ddl') throw new ConfigError(`athena: unknown action ${JSON.stringify(sub)}; available: ddl (athena query is not built yet)`);
  if (extra.length > 0) throw new ConfigError(`athena ddl: unexpected argument ${JSON.stringify(extra[0])}`);
  const settings = await lakeSettings(values, io);
  const { storage, catalog } = settings.open();
  const locationRoot = values.location ?? (storage.root.startsWith('s3://') ? storage.root : undefined);
  if (locationRoot === undefined) throw new ConfigError(`athena ddl: the lake ${storage.root} is local; give --location s3://bucket/prefix where it is (or will be) synced`);
  io.stdout.write(await athenaDdl(catalog, { database: values.database ?? catalog.database, locationRoot, projection: values.projection, projectionStart: values['projection-start'] }));
  return EXIT.ok;
}
