import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { Encoder } from '../../src/ingest/encoder.ts';
import { DEFAULT_TABLE_OF, EVENT_TYPES, type EventType } from '../../src/events/schema.ts';
import { SpoolBuffer } from '../../src/writer/spool.ts';
import { sortSpool, INDEX_ENTRY_BYTES } from '../../src/writer/spool-sort.ts';
import { SpoolSorter } from '../../src/writer/spool-sorter.ts';
import { sqlString } from '../../src/writer/duckdb.ts';
import { rng } from '../../src/sample/generate.ts';
import { tempDir } from '../support/tmp.ts';

// Names whose UTF-8 byte order differs from JavaScript's UTF-16 order (an emoji sorts before U+FFFD
// in UTF-16, after it in UTF-8), prefixes of each other, and characters JSON escapes.
const EVENTS = ['Order Completed', 'Order', 'order', 'Café ☕', 'Cafe', '😀 smile', '\uFFFD replacement', 'a/b "quoted"\\', 'tab\there', 'Ω', 'z'];

/** Spools `n` events (tracks and pages, some sharing receivedAt) through the real encoder into SpoolBuffers. */
function spoolEvents(dir: string, n: number, seed: number): Map<EventType, SpoolBuffer> {
  const rand = rng(seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    // Few distinct times, so ties are common and must keep arrival order.
    const receivedAt = new Date(Date.UTC(2026, 10, 21, 8, 0, Math.floor(rand() * 20))).toISOString();
    const messageId = `m${String(i).padStart(6, '0')}`; // ascending in arrival order: the tie-break
    const pad = 'x'.repeat(Math.floor(rand() * 300));
    if (rand() < 0.8) lines.push(JSON.stringify({ type: 'track', event: EVENTS[Math.floor(rand() * EVENTS.length)], anonymousId: `a${i}`, messageId, receivedAt, properties: { pad } }));
    else lines.push(JSON.stringify({ type: 'page', name: 'Home', anonymousId: `a${i}`, messageId, receivedAt, properties: { pad } }));
  }
  const encoder = new Encoder({ tables: DEFAULT_TABLE_OF, partitionBy: Object.fromEntries(EVENT_TYPES.map((t) => [t, []])) as unknown as Record<EventType, []> });
  const bufs = new Map<EventType, SpoolBuffer>();
  // Several inputs, so a spool gathers rows (and event ids) from more than one encoded group.
  const chunk = Math.ceil(n / 7);
  let pos = 1n;
  for (let c = 0; c < n; c += chunk) {
    const bytes = Buffer.from(lines.slice(c, c + chunk).join('\n') + '\n');
    const enc = encoder.encode({ kind: 'ndjson', bytes, ctx: { fallbackReceivedAtMs: 0, stampReceivedAt: false }, firstLineOfFile: c === 0 });
    assert.equal(enc.invalid.length, 0);
    for (const g of enc.groups) {
      let buf = bufs.get(g.type);
      if (buf === undefined) bufs.set(g.type, (buf = new SpoolBuffer(g.table, [], path.join(dir, `${g.table}.ndjson`), 0, new Map())));
      const rows = g.offsets.length - 1;
      buf.append(g, 0, 's', pos, pos + BigInt(rows - 1));
      pos += BigInt(rows);
    }
    // As the Ingestor does: the output buffer goes back to the encoder, and spools must not depend on it.
    if (enc.buffer !== null) {
      new Uint8Array(enc.buffer).fill(0x7b);
      encoder.recycle([enc.buffer]);
    }
  }
  for (const b of bufs.values()) b.close();
  return bufs;
}

/** messageIds of a spool file in line order. */
function idsInFile(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l).m as string);
}

/** The order DuckDB gives the same rows with ORDER BY (event, received_at), ties by arrival: the independent answer. */
async function duckdbOrder(spool: string, byEvent: boolean): Promise<string[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const rows = await conn.runAndReadAll(
      `SELECT m FROM read_json(${sqlString(spool)}, format='newline_delimited', columns={m: 'VARCHAR', r: 'BIGINT', e: 'STRUCT(event VARCHAR)'}) ORDER BY ${byEvent ? 'e.event, ' : ''}r, m`,
    );
    return rows.getRows().map((r) => String(r[0]));
  } finally {
    conn.closeSync();
  }
}

test('a sorted spool holds the same lines in the order DuckDB sorts them (UTF-8 byte order of event, then receivedAt, then arrival)', async () => {
  const dir = tempDir('sort');
  const bufs = spoolEvents(dir, 3000, 7);
  const tracks = bufs.get('track')!;
  const pages = bufs.get('page')!;
  assert.ok(tracks.events.length >= 10, `tracks saw ${tracks.events.length} distinct events`);
  for (const [buf, byEvent] of [
    [tracks, true],
    [pages, false],
  ] as const) {
    assert.equal(readFileSync(buf.indexPath).length, buf.rows * INDEX_ENTRY_BYTES);
    const out = path.join(dir, `${buf.table}.sorted.ndjson`);
    const r = sortSpool({ spoolPath: buf.path, indexPath: buf.indexPath, outPath: out, rows: buf.rows, events: buf.events, memoryBytes: 64 * 1024 * 1024 });
    assert.equal(r.runs, 0);
    assert.deepEqual(idsInFile(out), await duckdbOrder(buf.path, byEvent));
    // The same bytes, line for line, only reordered.
    const sortLines = (f: string) => readFileSync(f, 'utf8').split('\n').sort();
    assert.deepEqual(sortLines(out), sortLines(buf.path));
  }
});

test('a spool larger than the sort memory is sorted in runs and merged, to the same order', async () => {
  const dir = tempDir('sort-runs');
  const tracks = spoolEvents(dir, 4000, 11).get('track')!;
  const expected = await duckdbOrder(tracks.path, true);
  for (const memoryBytes of [1, 64 * 1024, 300 * 1024]) {
    const out = path.join(dir, `runs-${memoryBytes}.ndjson`);
    const r = sortSpool({ spoolPath: tracks.path, indexPath: tracks.indexPath, outPath: out, rows: tracks.rows, events: tracks.events, memoryBytes });
    assert.ok(r.runs > 1, `memory ${memoryBytes}: ${r.runs} runs for ${r.bytes} bytes`);
    assert.equal(r.bytes, tracks.bytes);
    assert.deepEqual(idsInFile(out), expected, `memory ${memoryBytes}`);
  }
  // Run files are removed after the merge.
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.run')), []);
});

test('SpoolSorter sorts in its worker thread, reports a bad spool as a WriterError, and refuses work once closed', async () => {
  const dir = tempDir('sorter');
  const tracks = spoolEvents(dir, 1500, 3).get('track')!;
  const sorter = new SpoolSorter(1, 0); // nothing inline: every sort goes to the worker
  try {
    const jobs = [0, 1, 2].map((i) => ({ spoolPath: tracks.path, indexPath: tracks.indexPath, outPath: path.join(dir, `w${i}.ndjson`), rows: tracks.rows, events: tracks.events, memoryBytes: i === 2 ? 32 * 1024 : 1 << 26 }));
    const results = await Promise.all(jobs.map((j) => sorter.sort(j, tracks.bytes)));
    assert.deepEqual(results.map((r) => r.runs > 0), [false, false, true]);
    const expected = await duckdbOrder(tracks.path, true);
    for (const j of jobs) assert.deepEqual(idsInFile(j.outPath), expected);
    // An index claiming more rows than the file holds: the error names the file, the worker survives.
    writeFileSync(path.join(dir, 'short.idx'), readFileSync(tracks.indexPath).subarray(0, INDEX_ENTRY_BYTES * 10));
    await assert.rejects(sorter.sort({ ...jobs[0]!, indexPath: path.join(dir, 'short.idx'), outPath: path.join(dir, 'bad.ndjson') }, tracks.bytes), (err: Error) => err.name === 'WriterError' && /short\.idx ended after/.test(err.message));
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('bad')), [], 'no partial output left');
    const again = await sorter.sort({ ...jobs[0]!, outPath: path.join(dir, 'again.ndjson') }, tracks.bytes);
    assert.equal(again.bytes, tracks.bytes);
  } finally {
    await sorter.close();
  }
  await assert.rejects(sorter.sort({ spoolPath: tracks.path, indexPath: tracks.indexPath, outPath: path.join(dir, 'late.ndjson'), rows: tracks.rows, events: tracks.events, memoryBytes: 1 << 20 }, tracks.bytes), /closed/);
});

test('SpoolSorter.prestart starts the worker ahead of the first sort; an unused prestarted worker neither holds the process nor blocks close', async () => {
  const dir = tempDir('prestart');
  const tracks = spoolEvents(dir, 400, 2).get('track')!;
  const used = new SpoolSorter(1, 0);
  used.prestart();
  used.prestart(); // idempotent: still one worker
  try {
    const out = path.join(dir, 'p.ndjson');
    const r = await used.sort({ spoolPath: tracks.path, indexPath: tracks.indexPath, outPath: out, rows: tracks.rows, events: tracks.events, memoryBytes: 1 << 26 }, tracks.bytes);
    assert.equal(r.bytes, tracks.bytes);
    assert.deepEqual(idsInFile(out), await duckdbOrder(tracks.path, true));
  } finally {
    await used.close();
  }
  const unused = new SpoolSorter(1, 0);
  unused.prestart();
  await unused.close();
  await assert.rejects(unused.sort({ spoolPath: tracks.path, indexPath: tracks.indexPath, outPath: path.join(dir, 'late.ndjson'), rows: tracks.rows, events: tracks.events, memoryBytes: 1 << 20 }, tracks.bytes), /closed/);
});
