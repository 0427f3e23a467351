import { createWriteStream, promises as fsp } from 'node:fs';
import { once } from 'node:events';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Catalog } from '../catalog/catalog.ts';
import { deadLetterFileRange } from '../ingest/dead-letters.ts';
import { Encoder, spoolMessageIdJson } from '../ingest/encoder.ts';
import { encoderInput, resolveIngestOptions, type IngestOptions } from '../ingest/ingestor.ts';
import { encoderConfig, tableLayouts } from '../ingest/tables.ts';
import { LakeQuery } from '../query/lake-query.ts';
import { eventPosition, recordPosition, refusedBySource, type Source } from '../source/source.ts';
import type { Storage } from '../storage/storage.ts';
import { sqlIdent, sqlString } from '../writer/duckdb.ts';

/** Options of a verification: the layout the input was ingested with. */
export interface VerifyOptions extends Pick<IngestOptions, 'tables' | 'partitionBy'> {
  /** Called every ~64 MiB of input read, with the input bytes read so far. */
  onProgress?: (inputBytes: number) => void;
}

/** How one partition (as the input routes its events) compares with the lake. */
export interface VerifyPartition {
  /** Partition pairs, as `key=value`. */
  values: string[];
  /** Valid events of the input routed here. */
  expected: number;
  /** Of those, how many the lake holds (matched by message_id, as many times as the input has it). */
  found: number;
  /** Input events the lake lacks. */
  missing: number;
  /** Rows the lake holds beyond the input's count for the same message_id (ingested twice, or from another source). */
  extra: number;
}

/** How one table compares with the lake. */
export interface VerifyTable {
  table: string;
  expected: number;
  found: number;
  missing: number;
  extra: number;
  /** Partitions, in order; a message_id routed to two partitions by the input counts in the first. */
  partitions: VerifyPartition[];
}

/** The outcome of verifyLake: parity when `missing`, `extra` and the dead-letter gaps are all zero. */
export interface VerifyResult {
  /** Events in the input (valid and invalid). */
  events: number;
  /** Invalid events (the input's dead letters). */
  invalid: number;
  /** Invalid events with no dead letter at their position in the lake's `_deadletter/<source>/`. */
  deadLettersMissing: number;
  tables: VerifyTable[];
  expected: number;
  found: number;
  missing: number;
  extra: number;
  /** True when every valid event is in the lake exactly as often as in the input, and every invalid one is dead-lettered. */
  parity: boolean;
}

const PROGRESS_BYTES = 64 * 1024 * 1024;

/**
 * Checks an input against the lake it was ingested into: the input goes through ingest's own reader,
 * decoder and routing (nothing is written), and each valid event is looked for in its table by
 * message_id, each invalid one in the dead letters by its position. The expected ids are spooled to
 * a scratch file and joined in DuckDB, so memory does not grow with the input.
 */
export async function verifyLake(storage: Storage, catalog: Catalog, source: Source, options: VerifyOptions = {}): Promise<VerifyResult> {
  const opts = resolveIngestOptions({ tables: options.tables, partitionBy: options.partitionBy });
  const encoder = new Encoder(encoderConfig(tableLayouts(opts.tables, opts.partitionBy)));
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'tributary-verify-'));
  try {
    const idsPath = path.join(tmp, 'expected.ndjson');
    const ids = createWriteStream(idsPath);
    const invalid = new Map<string, Set<bigint>>(); // shard → event positions
    const tablesSeen = new Set<string>();
    let events = 0, invalidCount = 0, nextProgress = PROGRESS_BYTES;
    const refuse = (shard: string, pos: bigint) => {
      let s = invalid.get(shard);
      if (s === undefined) invalid.set(shard, (s = new Set()));
      s.add(pos);
      invalidCount++;
    };
    for await (const batch of source) {
      const enc = encoder.encode(encoderInput(batch));
      events += enc.events;
      for (const inv of enc.invalid) refuse(batch.shard, eventPosition(recordPosition(batch, inv.record), inv.sub));
      if (batch.ndjson === undefined) {
        for (const r of batch.records) if (refusedBySource(r)) (events++, refuse(batch.shard, eventPosition(r.position, 0)));
      }
      let out = '';
      for (const g of enc.groups) {
        tablesSeen.add(g.table);
        const part = JSON.stringify(g.pairs.map(([k, v]) => `${k}=${v}`).join('/'));
        const text = Buffer.from(g.bytes.buffer, g.bytes.byteOffset, g.bytes.byteLength);
        for (let i = 0; i < g.record.length; i++) {
          out += `{"t":${JSON.stringify(g.table)},"p":${part},"m":${spoolMessageIdJson(text, g.offsets[i]!)}}\n`;
        }
      }
      if (enc.buffer !== null) encoder.recycle([enc.buffer]);
      if (batch.ndjson !== undefined) source.recycle?.(batch.ndjson.bytes);
      if (out.length > 0 && !ids.write(out)) await once(ids, 'drain');
      const read = source.progress?.().bytes ?? 0;
      if (read >= nextProgress) {
        options.onProgress?.(read);
        nextProgress = read + PROGRESS_BYTES;
      }
    }
    ids.end();
    await once(ids, 'finish');

    const deadLettersMissing = await missingDeadLetters(storage, source.name, invalid);
    const q = await LakeQuery.open(storage, catalog, { builtinViews: false, columns: ['message_id'] });
    const tables: VerifyTable[] = [];
    try {
      const inLake = new Set(q.tables.map((t) => t.name));
      const read = `read_json(${sqlString(idsPath)}, format='newline_delimited', columns={t: 'VARCHAR', p: 'VARCHAR', m: 'VARCHAR'})`;
      for (const table of [...tablesSeen].sort()) {
        // Per message_id: how often the input has it (and where it routes it first), how often the lake does.
        const lake = inLake.has(table)
          ? `(SELECT message_id AS m, count(*) AS n FROM ${sqlIdent(table)} WHERE message_id IN (SELECT m FROM e) GROUP BY 1)`
          : `(SELECT NULL::VARCHAR AS m, 0::BIGINT AS n WHERE false)`;
        const r = await q.query(
          `WITH e AS (SELECT m, min(p) AS p, count(*) AS n FROM ${read} WHERE t = ${sqlString(table)} GROUP BY m), l AS ${lake} ` +
            `SELECT e.p, sum(e.n)::BIGINT, sum(least(e.n, coalesce(l.n, 0)))::BIGINT, sum(greatest(e.n - coalesce(l.n, 0), 0))::BIGINT, sum(greatest(coalesce(l.n, 0) - e.n, 0))::BIGINT ` +
            `FROM e LEFT JOIN l ON e.m = l.m GROUP BY e.p ORDER BY e.p`,
        );
        const partitions = r.rows.map((row) => ({
          values: String(row[0]) === '' ? [] : String(row[0]).split('/'),
          expected: Number(row[1]),
          found: Number(row[2]),
          missing: Number(row[3]),
          extra: Number(row[4]),
        }));
        const sum = (k: 'expected' | 'found' | 'missing' | 'extra') => partitions.reduce((a, p) => a + p[k], 0);
        tables.push({ table, expected: sum('expected'), found: sum('found'), missing: sum('missing'), extra: sum('extra'), partitions });
      }
    } finally {
      q.close();
    }
    const total = (k: 'expected' | 'found' | 'missing' | 'extra') => tables.reduce((a, t) => a + t[k], 0);
    const missing = total('missing'), extra = total('extra');
    return {
      events,
      invalid: invalidCount,
      deadLettersMissing,
      tables,
      expected: total('expected'),
      found: total('found'),
      missing,
      extra,
      parity: missing === 0 && extra === 0 && deadLettersMissing === 0,
    };
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

/** How many of the `expected` (shard → event positions) have no dead letter under `_deadletter/<source>/`. */
async function missingDeadLetters(storage: Storage, sourceName: string, expected: Map<string, Set<bigint>>): Promise<number> {
  let missing = 0;
  for (const s of expected.values()) missing += s.size;
  if (missing === 0) return 0;
  const left = new Map([...expected].map(([shard, s]) => [shard, new Set(s)]));
  for (const o of await storage.list(`_deadletter/${sourceName}`, { recursive: true })) {
    // Names are <shard>-<first>-<last>.ndjson: only files of the input's shards are read.
    const range = deadLetterFileRange(o.key);
    const want = range === null ? undefined : left.get(range.shard);
    if (want === undefined || want.size === 0) continue;
    const body = await storage.get(o.key);
    if (body === undefined) continue;
    for (const line of body.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      let pos: bigint;
      try {
        pos = BigInt((JSON.parse(line) as { position: string }).position);
      } catch {
        continue; // not a dead letter this version wrote
      }
      if (want.delete(pos)) missing--;
    }
  }
  return missing;
}
