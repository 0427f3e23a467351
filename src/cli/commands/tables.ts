import { describeLake } from '../../query/describe.ts';
import { formatBytes } from '../../units.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, type Io } from '../args.ts';
import { ConfigError } from '../../errors.ts';

export const TABLES_HELP = `tributary tables [--lake DIR] [--json]

Lists the lake's tables with their columns, partitions and files (path, rows, bytes).
`;

export async function tablesCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, { ...LAKE_OPTIONS, json: { type: 'boolean' } });
  if (values.help) {
    io.stdout.write(TABLES_HELP);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new ConfigError(`tables: unexpected argument ${JSON.stringify(positionals[0])}`);
  const settings = await lakeSettings(values, io);
  const { storage, catalog } = await settings.open();
  const tables = await describeLake(storage, catalog);
  if (values.json) {
    io.stdout.write(JSON.stringify({ lake: storage.root, tables }, null, 2) + '\n');
    return EXIT.ok;
  }
  if (tables.length === 0) {
    io.stdout.write(`${storage.root}: no tables yet (run tributary ingest)\n`);
    return EXIT.ok;
  }
  const n = (x: number) => x.toLocaleString('en-US');
  const out: string[] = [];
  for (const t of tables) {
    out.push(`${t.name}: ${n(t.rows)} rows in ${n(t.files)} files, ${formatBytes(t.bytes)}; partitioned by ${t.partitionKeys.map((k) => k.name).join(', ') || '(none)'}`);
    out.push(`  columns: ${t.columns.map((c) => `${c.name} ${c.type}`).join(', ')}`);
    for (const p of t.partitions) {
      out.push(`  ${p.location}/  (${p.files.length} files)`);
      for (const f of p.files) out.push(`    ${f.path}  ${n(f.rows)} rows  ${formatBytes(f.bytes)}`);
    }
  }
  io.stdout.write(out.join('\n') + '\n');
  return EXIT.ok;
}
