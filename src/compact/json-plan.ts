import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Catalog } from '../catalog/catalog.ts';
import { InputError } from '../errors.ts';
import { Encoder } from '../ingest/encoder.ts';
import { encoderInput, resolveIngestOptions, type IngestOptions } from '../ingest/ingestor.ts';
import { recoverTable, type RecoveredTable } from '../ingest/recovery.ts';
import { encoderConfig, tableLayouts } from '../ingest/tables.ts';
import { FileSource } from '../source/file-source.ts';
import { eventPosition, recordPosition, refusedBySource } from '../source/source.ts';
import { downloadObject, type Storage } from '../storage/storage.ts';
import { segmentLayoutDay, type JsonInput } from './json-to-parquet.ts';

const MiB = 1024 * 1024;
/** Most inputs a plan reads (evenly spaced) when they do not all fit in sampleBytes. */
const MAX_SAMPLED_INPUTS = 256;

/** Options of a conversion plan: those of the conversion, and how much of the input to read. */
export interface JsonPlanOptions extends IngestOptions {
  /**
   * Most input bytes (as stored: gzipped inputs count compressed) the plan reads. Default 256 MiB;
   * at least 1 MiB. Inputs that fit are read whole and the plan is exact (events, dead letters, rows
   * already in the lake, partitions); beyond it, the heads of up to 256 evenly spaced inputs are read
   * and each stands for the inputs around it. Memory cost: one read buffer; nothing is written.
   */
  sampleBytes?: number;
}

/** What the conversion would write into one partition. */
export interface JsonPlanPartition {
  table: string;
  /** Partition pairs, as `key=value`. */
  values: string[];
  /** Events that would be written (not already in the lake). */
  events: number;
  /** Estimated Parquet bytes (spooled bytes ÷ inputBytesPerOutputByte, as ingest's first files assume). */
  parquetBytes: number;
  /** Files the size rotation would cut (the time cap and maxOpenPartitions may add more). */
  files: number;
}

/** The plan of a JSON → Parquet conversion (compact json --dry-run). */
export interface JsonPlan {
  inputs: number;
  /** Input bytes as stored. */
  inputBytes: number;
  /** Inputs read, and their stored bytes read, to make the plan. */
  sampledInputs: number;
  sampledBytes: number;
  /** True when every input was read whole: the counts are exact, not estimates. */
  exact: boolean;
  /** Events in the input (valid and invalid). */
  events: number;
  /** Invalid events: a conversion puts them in the dead letters (once: a re-run finds them there). */
  invalid: number;
  /** Valid events the lake already holds (a conversion re-run skips them). */
  alreadyInLake: number;
  partitions: JsonPlanPartition[];
  /** Sum of the partitions' files and Parquet bytes. */
  files: number;
  parquetBytes: number;
}

/**
 * Plans a conversion without writing anything: the inputs (or evenly spaced samples of them) go
 * through the conversion's own reader and decoder, and what is already committed is recovered from
 * the lake as a conversion would, so the plan counts what the run would do.
 */
export async function planJsonConversion(storage: Storage, catalog: Catalog, inputs: JsonInput[], options: JsonPlanOptions = {}): Promise<JsonPlan> {
  if (inputs.length === 0) throw new InputError('no raw JSON files (.ndjson, .jsonl, .json, .gz) found to convert');
  const sampleBytes = options.sampleBytes ?? 256 * MiB;
  if (!Number.isFinite(sampleBytes) || sampleBytes < MiB) throw new InputError(`sampleBytes ${sampleBytes} is too small: at least ${MiB} (1 MiB)`);
  const opts = resolveIngestOptions(options);
  const encoder = new Encoder(encoderConfig(tableLayouts(opts.tables, opts.partitionBy)));
  const total = inputs.reduce((a, i) => a + i.bytes, 0);
  // Which inputs are read, and how many stored bytes of the inputs each one stands for.
  const picks: Array<{ input: JsonInput; stands: number }> = [];
  let perInput = Infinity;
  if (total <= sampleBytes) for (const input of inputs) picks.push({ input, stands: input.bytes });
  else {
    const m = Math.min(inputs.length, MAX_SAMPLED_INPUTS);
    perInput = Math.max(MiB, Math.floor(sampleBytes / m));
    for (let j = 0; j < m; j++) {
      const from = Math.floor((j * inputs.length) / m), to = Math.floor(((j + 1) * inputs.length) / m);
      let stands = 0;
      for (let i = from; i < to; i++) stands += inputs[i]!.bytes;
      picks.push({ input: inputs[Math.floor(((j + 0.5) * inputs.length) / m)]!, stands });
    }
  }
  const recovered = new Map<string, RecoveredTable>();
  const parts = new Map<string, { table: string; values: string[]; events: number; spoolBytes: number }>();
  let events = 0, invalid = 0, alreadyInLake = 0, sampledBytes = 0;
  let exact = perInput === Infinity;
  let tmp: string | undefined;
  try {
    for (const { input, stands } of picks) {
      let local = input.path;
      let fallback = segmentLayoutDay(input.path);
      if (input.object !== undefined) {
        // An object in S3 is fetched whole to a scratch directory, streamed where the storage can (the plan never holds more than one).
        tmp ??= await fsp.mkdtemp(path.join(os.tmpdir(), 'tributary-plan-'));
        local = path.join(tmp, 'input');
        if ((await downloadObject(input.object.storage, input.object.key, local)) === undefined) throw new InputError(`cannot read input ${input.path}: it no longer exists`);
        fallback ??= input.object.mtimeMs;
      }
      const source = new FileSource([local], { fallbackReceivedAt: () => fallback });
      // Counted for this input, then weighed by the inputs it stands for.
      let ev = 0, dead = 0, already = 0;
      const seen = new Map<string, { table: string; values: string[]; events: number; spoolBytes: number }>();
      for await (const batch of source) {
        const enc = encoder.encode(encoderInput(batch));
        const nd = batch.ndjson;
        ev += enc.events;
        dead += enc.invalid.length;
        if (nd === undefined) {
          for (const r of batch.records) if (refusedBySource(r)) (ev++, dead++);
        }
        for (const g of enc.groups) {
          let rec = recovered.get(g.table);
          if (rec === undefined) recovered.set(g.table, (rec = await recoverTable(storage, catalog, g.table, source.name)));
          const mark = rec.marks.get(g.partKey)?.get(batch.shard);
          let rows = 0, bytes = 0;
          for (let i = 0; i < g.record.length; i++) {
            if (mark !== undefined && eventPosition(recordPosition(batch, g.record[i]!), g.sub[i]!) <= mark) already++;
            else (rows++, (bytes += g.offsets[i + 1]! - g.offsets[i]!));
          }
          if (rows === 0) continue;
          const key = g.table + '\u0000' + g.partKey;
          let p = seen.get(key);
          if (p === undefined) seen.set(key, (p = { table: g.table, values: g.pairs.map(([k, v]) => `${k}=${v}`), events: 0, spoolBytes: 0 }));
          p.events += rows;
          p.spoolBytes += bytes;
        }
        if (enc.buffer !== null) encoder.recycle([enc.buffer]);
        if (source.progress().bytes >= perInput) break;
      }
      const read = source.progress().bytes;
      const whole = read >= input.bytes;
      if (!whole || stands !== input.bytes) exact = false;
      sampledBytes += read;
      const w = read === 0 ? 0 : stands / (whole ? input.bytes : read);
      events += ev * w;
      invalid += dead * w;
      alreadyInLake += already * w;
      for (const [key, p] of seen) {
        let q = parts.get(key);
        if (q === undefined) parts.set(key, (q = { ...p, events: 0, spoolBytes: 0 }));
        q.events += p.events * w;
        q.spoolBytes += p.spoolBytes * w;
      }
    }
  } finally {
    if (tmp !== undefined) await fsp.rm(tmp, { recursive: true, force: true });
  }
  const partitions: JsonPlanPartition[] = [...parts.values()]
    .map((p) => ({
      table: p.table,
      values: p.values,
      events: Math.round(p.events),
      parquetBytes: Math.round(p.spoolBytes / opts.ratio),
      // The size rotation cuts a file each time a spool reaches targetFileBytes × the ratio.
      files: Math.max(1, Math.ceil(p.spoolBytes / (opts.targetFileBytes * opts.ratio))),
    }))
    .sort((a, b) => (a.table < b.table ? -1 : a.table > b.table ? 1 : a.values.join('/') < b.values.join('/') ? -1 : 1));
  return {
    inputs: inputs.length,
    inputBytes: total,
    sampledInputs: picks.length,
    sampledBytes,
    exact,
    events: Math.round(events),
    invalid: Math.round(invalid),
    alreadyInLake: Math.round(alreadyInLake),
    partitions,
    files: partitions.reduce((a, p) => a + p.files, 0),
    parquetBytes: partitions.reduce((a, p) => a + p.parquetBytes, 0),
  };
}
