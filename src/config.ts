import { promises as fsp } from 'node:fs';
import { ConfigError, badOption } from './errors.ts';
import type { PromoteConfig } from './events/promote.ts';

/** The settings a `tributary.config.json` may hold (CLI flags override them). */
export interface FileConfig {
  /** Lake directory, or s3://bucket/prefix. */
  lake?: string;
  /** embedded (default), embedded:<database> or glue:<database>. */
  catalog?: string;
  /** e.g. "512MB". */
  targetFileSize?: string | number;
  /** e.g. "15m". */
  maxFileAge?: string | number;
  /** e.g. "1h", or "off": how far past its day (or hour) a partition is taken as complete and written. */
  closeAfter?: string | number | null;
  /** e.g. "dt" or ["event", "dt"]. */
  partitionBy?: string | string[];
  compression?: 'zstd' | 'snappy';
  /** zstd level for ingest, 1–22 (default 1). */
  compressionLevel?: number;
  /** Table name per event type. */
  tables?: Record<string, string>;
  /** Keys of properties / traits written as typed columns, per event type (IngestOptions.promote). */
  promote?: PromoteConfig;
  maxOpenPartitions?: number;
  /** Keep a lossless gzip'd copy of the input under _raw/ (ingest, dev). Default false. */
  rawCopy?: boolean;
  /** Directories of extra `.sql` views. */
  views?: string[];
}

const KEYS = new Set(['lake', 'catalog', 'targetFileSize', 'maxFileAge', 'closeAfter', 'partitionBy', 'compression', 'compressionLevel', 'tables', 'promote', 'maxOpenPartitions', 'rawCopy', 'views', '$schema']);

/** Reads the config file at `path`; a missing default file is an empty config, a missing explicit one an error. */
export async function loadConfig(path: string, explicit: boolean): Promise<FileConfig> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) return {};
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) badOption(path, value, 'a JSON object');
  for (const k of Object.keys(value as object)) {
    if (!KEYS.has(k)) badOption(`${path}: key`, k, `one of ${[...KEYS].filter((x) => x !== '$schema').join(', ')}`);
  }
  return value as FileConfig;
}
