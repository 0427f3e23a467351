import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Catalog } from '../catalog/catalog.ts';
import { acquireLease } from '../catalog/lease.ts';
import { ConfigError, TributaryError, badOption } from '../errors.ts';
import type { Storage } from '../storage/storage.ts';
import type { IngestOptions } from '../ingest/ingestor.ts';
import { parseDuration, parseSize } from '../units.ts';
import { parseSchedule, type Schedule } from './cron.ts';
import { convertJson, isS3Location, listJsonInputs } from './json-to-parquet.ts';
import { runMerge } from './merge.ts';
import { deleteUsers, readIdsFile } from './delete-users.ts';
import { expirePartitions } from './expire.ts';

/** What a job gets to work with. */
export interface JobContext {
  storage: Storage;
  catalog: Catalog;
  /** Lines for the log (one summary line per run is expected). */
  log: (line: string) => void;
  /** Aborted when the scheduler is asked to stop. */
  signal: AbortSignal;
  /** The lake's layout settings from the config file (tables, promote, partitionBy, compression): the json kind starts from them, its own options override. */
  ingest?: Pick<IngestOptions, 'tables' | 'promote' | 'partitionBy' | 'compression'>;
}

/** A scheduled job: what `jobs/<name>.ts` exports by default, or an entry of tributary.jobs.json. */
export interface JobDefinition {
  /** Unique name, [a-z0-9-_]. */
  name: string;
  /** Cron (UTC), @daily-style alias or `@every 10m`; jobs without one run only by `jobs run`. */
  schedule?: string;
  /** Does the work; returns a short summary. Must be idempotent: it may be killed at any moment and run again. */
  run(ctx: JobContext): Promise<string | void>;
}

/** A JSON job entry: a built-in job kind with its options. */
interface JsonJob {
  name: string;
  schedule?: string;
  kind: 'merge' | 'json' | 'delete-users' | 'expire';
  options?: Record<string, unknown>;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

function fromJson(j: JsonJob, file: string): JobDefinition {
  const o = j.options ?? {};
  const str = (k: string) => (o[k] === undefined ? undefined : String(o[k]));
  const duration = (k: string) => (o[k] === undefined ? undefined : parseDuration(`${j.name}.${k}`, String(o[k])));
  if (j.kind === 'merge') {
    return {
      name: j.name,
      schedule: j.schedule,
      run: async ({ storage, catalog }) => {
        const r = await runMerge(storage, catalog, {
          table: str('table'),
          olderThanMs: duration('olderThan'),
          graceMs: duration('grace'),
          smallFileBytes: str('smallFileSize') === undefined ? undefined : parseSize(`${j.name}.smallFileSize`, str('smallFileSize')!),
          targetFileBytes: str('targetFileSize') === undefined ? undefined : parseSize(`${j.name}.targetFileSize`, str('targetFileSize')!),
        });
        return `merged ${r.merged} partitions, ${r.filesIn} → ${r.filesOut} files; ${r.garbageDeleted} replaced files deleted`;
      },
    };
  }
  if (j.kind === 'json') {
    const from = str('from');
    if (from === undefined) badOption(`${file}: job ${j.name}.options.from`, from, 'the directory (or s3://bucket/prefix) of raw JSON to convert');
    return {
      name: j.name,
      schedule: j.schedule,
      run: async ({ storage, catalog, signal, ingest }) => {
        const s = await convertJson(storage, catalog, await listJsonInputs(isS3Location(from!) ? from! : path.resolve(path.dirname(file), from!)), {
          ...ingest,
          signal,
          targetFileBytes: str('targetFileSize') === undefined ? undefined : parseSize(`${j.name}.targetFileSize`, str('targetFileSize')!),
          partitionBy: str('partitionBy') ?? ingest?.partitionBy,
        });
        return `read ${s.read}, written ${s.written}, dead letters ${s.deadLettered}, already there ${s.skipped}`;
      },
    };
  }
  if (j.kind === 'delete-users') {
    const idsFile = str('idsFile');
    if (idsFile === undefined) badOption(`${file}: job ${j.name}.options.idsFile`, idsFile, 'the file of ids to delete (one a line, user:ID or anonymous:ID)');
    return {
      name: j.name,
      schedule: j.schedule,
      run: async ({ storage, catalog }) => {
        // Read at each run: the file may gain ids between runs (ids already deleted find nothing).
        const ids = await readIdsFile(path.resolve(path.dirname(file), idsFile!));
        if (ids.userIds.length + ids.anonymousIds.length === 0) return 'no ids in the file';
        const r = await deleteUsers(storage, catalog, {
          ...ids,
          table: str('table'),
          graceMs: duration('grace'),
        });
        const rows = Object.values(r.rows).reduce((a, b) => a + b, 0);
        return `deleted ${rows} rows (${r.files} files rewritten in ${r.partitions} partitions), ${r.deadLetters} dead letters${r.skipped.length > 0 ? `; ${r.skipped.length} partitions busy, left for the next run` : ''}`;
      },
    };
  }
  if (j.kind === 'expire') {
    const olderThanMs = duration('olderThan');
    if (olderThanMs === undefined) badOption(`${file}: job ${j.name}.options.olderThan`, olderThanMs, 'the retention, e.g. "90d"');
    const graceMs = duration('grace');
    const deadLetters = o.deadLetters === undefined ? undefined : o.deadLetters === true ? true : o.deadLetters === false ? false : badOption(`${file}: job ${j.name}.options.deadLetters`, o.deadLetters, 'true or false');
    return {
      name: j.name,
      schedule: j.schedule,
      run: async ({ storage, catalog }) => {
        const r = await expirePartitions(storage, catalog, { olderThanMs, graceMs, table: str('table'), deadLetters });
        return `expired ${r.partitions.length} partitions before ${r.cutoff} (${r.files} files), ${r.deadLetterFiles} dead-letter files, ${r.rawFiles} raw-copy files, ${r.orphans} unregistered files${r.skipped.length > 0 ? `; ${r.skipped.length} partitions busy, left for the next run` : ''}`;
      },
    };
  }
  badOption(`${file}: job ${j.name}.kind`, (j as { kind: unknown }).kind, '"merge", "json", "delete-users" or "expire"');
}

/** A validated job with its parsed schedule. */
export interface LoadedJob {
  def: JobDefinition;
  schedule: Schedule | null;
  /** Where it was defined. */
  file: string;
}

/**
 * Imports a job file. The CLI runs from a bundle, without a TypeScript loader: the first `.ts` job
 * file Node cannot load registers tsx, and is imported again (under another URL: Node remembers the
 * failed load of the first).
 */
async function importJobFile(file: string): Promise<unknown> {
  const url = pathToFileURL(file).href;
  try {
    return await import(url);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
    if (!tsxRegistered) {
      const { register } = await import('tsx/esm/api');
      register();
      tsxRegistered = true;
    }
    return import(`${url}?typescript`);
  }
}
let tsxRegistered = false;

/** Loads `<dir>/jobs/*.ts` (default export: a JobDefinition or an array of them) and `<dir>/tributary.jobs.json`. */
export async function loadJobs(dir: string): Promise<LoadedJob[]> {
  const found: LoadedJob[] = [];
  const add = (def: JobDefinition, file: string) => {
    if (typeof def?.name !== 'string' || !NAME.test(def.name)) badOption(`${file}: job name`, def?.name, 'lower-case letters, digits, - and _ (at most 64)');
    if (typeof def.run !== 'function') badOption(`${file}: job ${def.name}.run`, typeof def.run, 'a function');
    if (found.some((j) => j.def.name === def.name)) throw new ConfigError(`job ${def.name} is defined twice (${found.find((j) => j.def.name === def.name)!.file} and ${file})`);
    found.push({ def, schedule: def.schedule === undefined ? null : parseSchedule(def.schedule), file });
  };
  const jobsDir = path.join(dir, 'jobs');
  let names: string[] = [];
  try {
    names = (await fsp.readdir(jobsDir)).filter((n) => /\.(ts|mts|js|mjs)$/.test(n) && !n.endsWith('.d.ts')).sort();
  } catch {
    names = [];
  }
  for (const n of names) {
    const file = path.join(jobsDir, n);
    let mod: { default?: JobDefinition | JobDefinition[] };
    try {
      mod = (await importJobFile(file)) as typeof mod;
    } catch (err) {
      throw new ConfigError(
        `cannot load job file ${file}: ${(err as Error).message.split('\n')[0]}` +
          (/\.ts$/.test(file) ? ' (outside a package with "type": "module", name it .mts)' : ''),
        { cause: err },
      );
    }
    if (mod.default === undefined) throw new ConfigError(`${file}: no default export (export default a job definition)`);
    for (const d of Array.isArray(mod.default) ? mod.default : [mod.default]) add(d, file);
  }
  const jsonFile = path.join(dir, 'tributary.jobs.json');
  let text: string | undefined;
  try {
    text = await fsp.readFile(jsonFile, 'utf8');
  } catch {
    text = undefined;
  }
  if (text !== undefined) {
    let parsed: { jobs?: JsonJob[] };
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`${jsonFile} is not valid JSON: ${(err as Error).message}`);
    }
    if (!Array.isArray(parsed.jobs)) badOption(`${jsonFile}: jobs`, parsed.jobs, 'an array of {name, kind, schedule?, options?}');
    for (const j of parsed.jobs) add(fromJson(j, jsonFile), jsonFile);
  }
  return found;
}

/** The outcome of one attempt to run a job. */
export type JobOutcome = { ran: true; summary: string; seconds: number } | { ran: false; reason: string };

/** Runs a job under its lease (`_tributary/leases/jobs/<name>`), so two schedulers never run it at once. */
export async function runJob(job: JobDefinition, ctx: JobContext): Promise<JobOutcome> {
  const release = await acquireLease(ctx.storage, `_tributary/leases/jobs/${job.name}`);
  if (release === null) return { ran: false, reason: `job ${job.name} is running elsewhere` };
  const started = Date.now();
  try {
    const summary = (await job.run(ctx)) ?? 'done';
    return { ran: true, summary, seconds: (Date.now() - started) / 1000 };
  } finally {
    await release();
  }
}

/**
 * Runs the scheduled jobs when due until `ctx.signal` aborts; a run that fails is logged and the job
 * runs again at its next time. Returns when stopped and the running jobs have finished.
 */
export async function schedule(jobs: LoadedJob[], ctx: JobContext): Promise<void> {
  const scheduled = jobs.filter((j) => j.schedule !== null);
  if (scheduled.length === 0) throw new ConfigError('no job has a schedule (give "schedule": "0 3 * * *" or "@every 10m")');
  await Promise.all(
    scheduled.map(async (j) => {
      while (!ctx.signal.aborted) {
        const at = j.schedule!.next(Date.now());
        ctx.log(`${j.def.name}: next run ${new Date(at).toISOString()}`);
        const stop = await sleepUntil(at, ctx.signal);
        if (stop) return;
        try {
          const o = await runJob(j.def, ctx);
          ctx.log(o.ran ? `${j.def.name}: ${o.summary} (${o.seconds.toFixed(1)} s)` : `${j.def.name}: skipped, ${o.reason}`);
        } catch (err) {
          ctx.log(`${j.def.name}: failed: ${(err as Error).message}${err instanceof TributaryError && err.retriable ? ' (retriable)' : ''}`);
        }
      }
    }),
  );
}

/** Resolves true if aborted before `at`. */
function sleepUntil(at: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(true);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(false);
    }, Math.max(0, at - Date.now()));
    const onAbort = () => {
      clearTimeout(t);
      resolve(true);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
