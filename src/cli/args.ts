import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadConfig, type FileConfig } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { openLake, type Lake } from '../lake.ts';

/** Exit codes of every command. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** Output streams, replaceable in tests. */
export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Options every lake command takes. */
export const LAKE_OPTIONS = {
  lake: { type: 'string' },
  catalog: { type: 'string' },
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

/** parseArgs, with its errors turned into ConfigError (exit 2). */
export function parse<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError((err as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''), { cause: err });
  }
}

/** The config file (`--config`, else ./tributary.config.json if present) and the lake directory it resolves to. */
export async function lakeSettings(values: { lake?: string; config?: string; catalog?: string }, io: Io): Promise<{ config: FileConfig; lake: string; open: () => Promise<Lake> }> {
  const explicit = values.config !== undefined;
  const config = await loadConfig(values.config ?? `${io.cwd}/tributary.config.json`, explicit);
  const lake = values.lake ?? (io.env.TRIBUTARY_LAKE || undefined) ?? config.lake ?? './lake';
  if (lake.length === 0) throw new ConfigError('--lake: an empty path is not a lake directory');
  const catalog = values.catalog ?? config.catalog;
  return { config, lake, open: () => openLake(lake, { catalog, cwd: io.cwd, env: io.env }) };
}

/** --raw-copy, else the config file's rawCopy (a boolean). */
export function rawCopyOption(flag: boolean | undefined, config: unknown): boolean {
  if (flag) return true;
  if (config === undefined) return false;
  if (typeof config !== 'boolean') throw new ConfigError(`tributary.config.json: rawCopy: ${JSON.stringify(config)} is not valid; expected true or false`);
  return config;
}

/**
 * Runs `fn` with a progress callback that draws `<label>: N of M partitions` on standard error
 * when it is a terminal and the output is not --json, and clears the line afterwards.
 */
export async function withPartitionProgress<T>(io: Io, json: boolean | undefined, label: string, fn: (onProgress?: (p: { partitionsDone: number; partitions: number }) => void) => Promise<T>): Promise<T> {
  const tty = io.stderr.isTTY === true && !json;
  try {
    return await fn(tty ? (p) => io.stderr.write(`\r\x1b[K${label}: ${p.partitionsDone} of ${p.partitions} partitions`) : undefined);
  } finally {
    if (tty) io.stderr.write('\r\x1b[K');
  }
}
