import { EmbeddedCatalog } from '../../catalog/embedded-catalog.ts';
import { syncCatalog } from '../../catalog/sync.ts';
import { ConfigError } from '../../errors.ts';
import { openLake } from '../../lake.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, type Io } from '../args.ts';

export const CATALOG_HELP = `tributary catalog ls [--lake DIR|s3://…] [--catalog embedded|glue:<db>]
tributary catalog sync --lake s3://bucket/prefix --glue-database NAME [--table NAME] [--prune] [--json]

ls lists the catalog's tables and partitions with their locations. sync mirrors the lake's embedded
catalog into Glue: tables (columns appended, never reordered), missing partitions, and partition
locations moved by compaction since the last sync. Idempotent. --prune also drops the Glue
partitions (of the lake's tables) that the embedded catalog no longer has, as after \`tributary
expire\`; without it nothing is removed from Glue.
`;

export async function catalogCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, { ...LAKE_OPTIONS, 'glue-database': { type: 'string' }, table: { type: 'string' }, json: { type: 'boolean' }, prune: { type: 'boolean' } });
  const [sub, ...extra] = positionals;
  if (values.help || sub === undefined) {
    io.stdout.write(CATALOG_HELP);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  if (extra.length > 0) throw new ConfigError(`catalog: unexpected argument ${JSON.stringify(extra[0])}`);
  const settings = await lakeSettings(values, io);
  if (sub === 'ls') {
    const { catalog } = await settings.open();
    const out: unknown[] = [];
    for (const t of await catalog.listTables()) {
      const parts = await catalog.getPartitions(t.name);
      if (values.json) out.push({ table: t.name, location: t.location, partitions: parts });
      else {
        io.stdout.write(`${t.name}\t${t.location}\t${parts.length} partitions\n`);
        for (const p of parts) io.stdout.write(`  ${p.values.join(', ')}\t${p.location}\tv${p.version}\n`);
      }
    }
    if (values.json) io.stdout.write(JSON.stringify(out) + '\n');
    return EXIT.ok;
  }
  if (sub !== 'sync') throw new ConfigError(`catalog: unknown action ${JSON.stringify(sub)}; use ls or sync`);
  const db = values['glue-database'];
  if (db === undefined) throw new ConfigError('catalog sync: --glue-database NAME is required');
  const { storage } = await settings.open();
  const glue = (await openLake(settings.lake, { catalog: `glue:${db}`, cwd: io.cwd, env: io.env })).catalog;
  const r = await syncCatalog(new EmbeddedCatalog(storage), glue, { table: values.table, prune: values.prune });
  io.stdout.write(values.json ? JSON.stringify(r) + '\n' : `synced ${r.tables} tables into Glue database ${db}: ${r.added} partitions added, ${r.moved} moved to their current location${values.prune ? `, ${r.dropped} dropped` : ''}\n`);
  return EXIT.ok;
}
