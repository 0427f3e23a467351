import type { Catalog, PartitionDef, TableDef } from '../catalog/catalog.ts';
import { ConfigError } from '../errors.ts';

/** How to write the DDL. */
export interface DdlOptions {
  /** Athena/Glue database name. */
  database: string;
  /** The lake's S3 root (`s3://bucket/prefix`), which the catalog's relative locations hang from. */
  locationRoot: string;
  /**
   * Partition projection instead of registered partitions: no partition registration at all, but
   * locations are fixed by a template, so Athena cannot follow compaction's generation swaps: merged
   * files (under `_g…/`) stay invisible to it and replaced files vanish after the grace period.
   * Use it only on lakes that are not compacted. Default false.
   */
  projection?: boolean;
  /** First day of the `dt` projection range. Default 2020-01-01. */
  projectionStart?: string;
}

const ident = (s: string) => `\`${s.replace(/`/g, '``')}\``;
const str = (s: string) => `'${s.replace(/'/g, "''")}'`;

/**
 * Athena DDL for every table of the lake: `CREATE EXTERNAL TABLE` (Parquet, Hive partitions,
 * LOCATION) and either `ALTER TABLE … ADD PARTITION … LOCATION` for each registered partition (at its
 * current location, compaction generations included) or the partition-projection properties.
 * Timestamps are Parquet INT64 TIMESTAMP(MILLIS), which Athena reads as `timestamp`.
 */
export async function athenaDdl(catalog: Catalog, o: DdlOptions): Promise<string> {
  if (!/^s3:\/\/[^/]+/.test(o.locationRoot)) throw new ConfigError(`location ${JSON.stringify(o.locationRoot)}: Athena reads S3; give s3://bucket/prefix (where the lake is, or is synced to)`);
  if (!/^[a-z_][a-z0-9_]{0,254}$/.test(o.database)) throw new ConfigError(`database ${JSON.stringify(o.database)}: expected lower-case letters, digits and _`);
  const root = o.locationRoot.replace(/\/+$/, '');
  const out = [`CREATE DATABASE IF NOT EXISTS ${ident(o.database)};`, ''];
  for (const t of await catalog.listTables()) {
    out.push(tableDdl(t, o, root), '');
    if (o.projection) continue;
    const parts = await catalog.getPartitions(t.name);
    for (let i = 0; i < parts.length; i += 100) out.push(addPartitions(t, parts.slice(i, i + 100), o.database, root), '');
  }
  return out.join('\n');
}

function tableDdl(t: TableDef, o: DdlOptions, root: string): string {
  const cols = t.columns.map((c) => `  ${ident(c.name)} ${c.type}${c.comment ? ` COMMENT ${str(c.comment)}` : ''}`).join(',\n');
  const parts = t.partitionKeys.map((k) => `${ident(k.name)} ${k.type}`).join(', ');
  const props: Array<[string, string]> = Object.entries(t.parameters).filter(([k]) => !k.startsWith('tributary_'));
  if (o.projection && t.partitionKeys.length > 0) {
    props.push(['projection.enabled', 'true']);
    for (const k of t.partitionKeys) {
      if (k.name === 'dt') props.push(['projection.dt.type', 'date'], ['projection.dt.format', 'yyyy-MM-dd'], ['projection.dt.range', `${o.projectionStart ?? '2020-01-01'},NOW`], ['projection.dt.interval', '1'], ['projection.dt.interval.unit', 'DAYS']);
      else if (k.name === 'hour') props.push(['projection.hour.type', 'integer'], ['projection.hour.range', '0,23'], ['projection.hour.digits', '2']);
      else props.push([`projection.${k.name}.type`, 'injected']);
    }
    props.push(['storage.location.template', `${root}/${t.location}/${t.partitionKeys.map((k) => `${k.name}=\${${k.name}}`).join('/')}/`]);
  }
  return [
    `CREATE EXTERNAL TABLE IF NOT EXISTS ${ident(o.database)}.${ident(t.name)} (`,
    cols,
    ')',
    ...(parts ? [`PARTITIONED BY (${parts})`] : []),
    `ROW FORMAT SERDE ${str(t.serde)}`,
    `STORED AS INPUTFORMAT ${str(t.inputFormat)} OUTPUTFORMAT ${str(t.outputFormat)}`,
    `LOCATION ${str(`${root}/${t.location}/`)}`,
    `TBLPROPERTIES (${props.map(([k, v]) => `${str(k)}=${str(v)}`).join(', ')});`,
  ].join('\n');
}

function addPartitions(t: TableDef, parts: PartitionDef[], database: string, root: string): string {
  const specs = parts.map((p) => `  PARTITION (${t.partitionKeys.map((k, i) => `${ident(k.name)}=${str(p.values[i]!)}`).join(', ')}) LOCATION ${str(`${root}/${p.location}/`)}`);
  return `ALTER TABLE ${ident(database)}.${ident(t.name)} ADD IF NOT EXISTS\n${specs.join('\n')};`;
}
