import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Catalog } from '../catalog/catalog.ts';
import { ConfigError, InputError } from '../errors.ts';
import { Ingestor, type IngestOptions, type IngestStats } from '../ingest/ingestor.ts';
import { FileSource } from '../source/file-source.ts';
import type { Storage } from '../storage/storage.ts';

/** Names of raw JSON inputs: NDJSON / JSON Lines / JSON, gzipped or not, and Segment's extensionless `.gz` parts. */
const JSON_INPUT = /\.(ndjson|jsonl|json|gz)$/i;

/** One raw input found under the source directory. */
export interface JsonInput {
  path: string;
  bytes: number;
}

/**
 * The received day of a file in Segment's S3 destination layout,
 * `segment-logs/<source-id>/<received-day-epoch-ms>/<file>.gz`; undefined elsewhere.
 */
export function segmentLayoutDay(file: string): number | undefined {
  const m = /[/\\](\d{13})[/\\][^/\\]+$/.exec(file);
  return m === null ? undefined : Number(m[1]);
}

/** Every raw JSON file under `dir` (recursively; hidden names skipped), sorted by path, so runs are repeatable. */
export async function listJsonInputs(dir: string): Promise<JsonInput[]> {
  if (/^s3:\/\//i.test(dir)) throw new ConfigError(`--from ${dir}: reading raw JSON from S3 needs the S3 storage of issue 4; copy it locally (aws s3 sync) for now`);
  const out: JsonInput[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await fsp.readdir(d, { withFileTypes: true });
    } catch (err) {
      throw new InputError(`cannot read ${d}: ${(err as Error).message}`, { cause: err });
    }
    for (const e of entries) {
      if (e.name.startsWith('.') || e.name.startsWith('_')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && JSON_INPUT.test(e.name)) out.push({ path: p, bytes: (await fsp.stat(p)).size });
    }
  };
  await walk(path.resolve(dir));
  out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return out;
}

/**
 * JSON → Parquet backfill: the inputs go through the very ingest pipeline (decoder, validation,
 * dead letters, schema, partitioning, exactly-once file names), so a backfilled event is
 * indistinguishable from a streamed one and converting the same input twice changes nothing.
 */
export async function convertJson(storage: Storage, catalog: Catalog, inputs: JsonInput[], options: IngestOptions = {}): Promise<IngestStats> {
  if (inputs.length === 0) throw new InputError('no raw JSON files (.ndjson, .jsonl, .json, .gz) found to convert');
  const source = new FileSource(
    inputs.map((i) => i.path),
    { fallbackReceivedAt: segmentLayoutDay },
  );
  return new Ingestor(storage, catalog, options).run(source);
}
