import * as path from 'node:path';
import { FileSource } from '../../source/file-source.ts';
import { verifyLake, type VerifyResult } from '../../verify/verify.ts';
import { formatBytes } from '../../units.ts';
import { ConfigError } from '../../errors.ts';
import { EXIT, LAKE_OPTIONS, lakeSettings, parse, type Io } from '../args.ts';

export const VERIFY_HELP = `tributary verify [options] <file ...|->

Checks that the lake holds an input exactly: the input is read through ingest's own reader, decoder
and routing (nothing is written); every valid event is looked for in its table by message_id (as
many times as the input has it), every invalid one in the dead letters by its position. Prints, per
table and partition, the events expected, found, missing, and extra (the lake holds a message_id
more often than the input: ingested twice, or also from another source).

  --lake DIR               lake directory (default $TRIBUTARY_LAKE, else ./lake)
  --partition-by FIELDS    the partition spec the input was ingested with (default: the config's, else dt)
  --json                   print the result as one JSON object
  --config FILE            settings file (default ./tributary.config.json)

Exit codes: 0 the lake holds the input exactly, 1 it does not (or verification failed), 2 bad usage.
`;

export async function verifyCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, { ...LAKE_OPTIONS, json: { type: 'boolean' }, 'partition-by': { type: 'string' } });
  if (values.help) {
    io.stdout.write(VERIFY_HELP);
    return EXIT.ok;
  }
  if (positionals.length === 0) throw new ConfigError('verify: no input given; name the NDJSON files that were ingested, or - for standard input');
  const settings = await lakeSettings(values, io);
  const { config } = settings;
  const { storage, catalog } = await settings.open();
  const progressTty = io.stderr.isTTY === true && !values.json;
  const source = new FileSource(positionals.map((p) => (p === '-' ? p : path.resolve(io.cwd, p))), { stdin: io.stdin as never });
  let result: VerifyResult;
  try {
    result = await verifyLake(storage, catalog, source, {
      tables: config.tables,
      partitionBy: values['partition-by'] ?? config.partitionBy ?? 'dt',
      onProgress: progressTty ? (bytes) => io.stderr.write(`\r\x1b[Kverify: ${formatBytes(bytes)} of input read`) : undefined,
    });
  } finally {
    if (progressTty) io.stderr.write('\r\x1b[K');
  }
  if (values.json) io.stdout.write(JSON.stringify(result) + '\n');
  else io.stdout.write(report(result, storage.root));
  return result.parity ? EXIT.ok : EXIT.failure;
}

function report(r: VerifyResult, root: string): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const out: string[] = [];
  for (const t of r.tables) {
    out.push(`${t.table}: ${n(t.expected)} expected, ${n(t.found)} found, ${n(t.missing)} missing, ${n(t.extra)} extra`);
    for (const p of t.partitions) {
      if (p.missing === 0 && p.extra === 0) continue; // only the partitions that differ
      out.push(`  ${p.values.join('/') || '(unpartitioned)'}: ${n(p.expected)} expected, ${n(p.found)} found, ${n(p.missing)} missing, ${n(p.extra)} extra`);
    }
  }
  out.push(`dead letters: ${n(r.invalid)} invalid events in the input, ${n(r.invalid - r.deadLettersMissing)} dead-lettered, ${n(r.deadLettersMissing)} missing`);
  out.push(
    r.parity
      ? `${root} holds the input exactly: ${n(r.expected)} events, each as often as the input has it, and its ${n(r.invalid)} invalid events in the dead letters`
      : `${root} does NOT hold the input exactly: ${n(r.missing)} events missing, ${n(r.extra)} extra rows, ${n(r.deadLettersMissing)} dead letters missing`,
  );
  return out.join('\n') + '\n';
}
