import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { Encoder } from '../../src/ingest/encoder.ts';
import { DEFAULT_TABLE_OF, EVENT_TYPES, type EventType } from '../../src/events/schema.ts';
import { MAX_SEGMENTS, SpoolBuffer } from '../../src/writer/spool.ts';
import { sortSpool, INDEX_ENTRY_BYTES, type SpoolSortJob } from '../../src/writer/spool-sort.ts';
import { SpoolSorter } from '../../src/writer/spool-sorter.ts';
import { sqlString } from '../../src/writer/duckdb.ts';
import { rng } from '../../src/sample/generate.ts';
import { tempDir } from '../support/tmp.ts';

// Names whose UTF-8 byte order differs from JavaScript's UTF-16 order (an emoji sorts before U+FFFD
// in UTF-16, after it in UTF-8), prefixes of each other, and characters JSON escapes.
const EVENTS = ['Order Completed', 'Order', 'order', 'Café ☕', 'Cafe', '😀 smile', '\uFFFD replacement', 'a/b "quoted"\\', 'tab\there', 'Ω', 'z'];

/**
 * Spools `n` events (tracks and pages, some sharing receivedAt) through the real encoder into
 * SpoolBuffers. Events `inTimeOrder` selects arrive with receivedAt never decreasing (ties common);
 * the others in no order.
 */
function spoolEvents(dir: string, n: number, seed: number, events: string[] = EVENTS, inTimeOrder: (event: string) => boolean = () => false): Map<EventType, SpoolBuffer> {
  const rand = rng(seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const event = events[Math.floor(rand() * events.length)]!;
    const track = rand() < 0.8;
    // Few distinct times, so ties are common and must keep arrival order.
    const second = inTimeOrder(track ? event : '') ? Math.floor((i / n) * 20) : Math.floor(rand() * 20);
    const receivedAt = new Date(Date.UTC(2026, 10, 21, 8, 0, second)).toISOString();
    const messageId = `m${String(i).padStart(6, '0')}`; // ascending in arrival order: the tie-break
    const pad = 'x'.repeat(Math.floor(rand() * 300));
    if (track) lines.push(JSON.stringify({ type: 'track', event, anonymousId: `a${i}`, messageId, receivedAt, properties: { pad } }));
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

/** messageIds of spool files read one after the other, in line order. */
function idsIn(files: string[]): string[] {
  return files.flatMap((f) => readFileSync(f, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l).m as string));
}

/** The sort job of a spool. */
function jobOf(buf: SpoolBuffer, outPath: string, memoryBytes: number): SpoolSortJob {
  return { segments: buf.segments, indexPath: buf.indexPath, segmentOf: buf.segmentOf, outPath, rows: buf.rows, events: buf.events, memoryBytes };
}

/** Every line of a spool's segments, sorted (to compare contents regardless of order). */
function linesOf(files: string[]): string[] {
  return files.flatMap((f) => readFileSync(f, 'utf8').split('\n').filter((l) => l !== '')).sort();
}

/** The order DuckDB gives the same rows with ORDER BY (event, received_at), ties by arrival: the independent answer. */
async function duckdbOrder(buf: SpoolBuffer, byEvent: boolean): Promise<string[]> {
  const spool = buf.segments.map((s) => s.path);
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const rows = await conn.runAndReadAll(
      `SELECT m FROM read_json([${spool.map(sqlString).join(', ')}], format='newline_delimited', columns={m: 'VARCHAR', r: 'BIGINT', e: 'STRUCT(event VARCHAR)'}) ORDER BY ${byEvent ? 'e.event, ' : ''}r, m`,
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
  assert.equal(tracks.segments.length, tracks.events.length, 'one segment per event');
  for (const [buf, byEvent] of [
    [tracks, true],
    [pages, false],
  ] as const) {
    assert.equal(buf.inOrder, false);
    assert.equal(readFileSync(buf.indexPath).length, buf.rows * INDEX_ENTRY_BYTES);
    const r = sortSpool(jobOf(buf, path.join(dir, `${buf.table}.sorted.ndjson`), 64 * 1024 * 1024));
    assert.equal(r.runs, 0);
    assert.equal(r.bytes, buf.bytes);
    assert.deepEqual(r.files, r.copies, 'every segment copied');
    assert.equal(r.copies.length, 1, 'one piece: nothing read as it is falls between');
    assert.deepEqual(idsIn(r.files), await duckdbOrder(buf, byEvent));
    // The same bytes, line for line, only reordered.
    assert.deepEqual(linesOf(r.files), linesOf(buf.segments.map((sg) => sg.path)));
  }
});

test('segments already in order are read as they are, between sorted pieces of the others, by event', async () => {
  const dir = tempDir('sort-mixed');
  // Every other event (in UTF-8 order) arrives in time order: pieces and as-is segments alternate.
  const inOrder = new Set(EVENTS.filter((e) => [...EVENTS].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))).indexOf(e) % 2 === 0));
  const tracks = spoolEvents(dir, 4000, 13, EVENTS, (e) => inOrder.has(e)).get('track')!;
  const asIs = tracks.segments.filter((sg) => sg.inOrder);
  assert.equal(asIs.length, inOrder.size);
  const expected = await duckdbOrder(tracks, true);
  for (const memoryBytes of [64 * 1024 * 1024, 64 * 1024]) {
    const r = sortSpool(jobOf(tracks, path.join(dir, `mixed-${memoryBytes}.ndjson`), memoryBytes));
    assert.equal(r.runs > 0, memoryBytes < tracks.bytes, `memory ${memoryBytes}: ${r.runs} runs`);
    assert.equal(r.bytes, tracks.bytes - asIs.reduce((a, sg) => a + sg.bytes, 0), 'only the segments out of order are copied');
    for (const sg of asIs) assert.ok(r.files.includes(sg.path) && !r.copies.includes(sg.path));
    assert.equal(r.files.length, r.copies.length + asIs.length);
    assert.deepEqual(idsIn(r.files), expected, `memory ${memoryBytes}`);
  }
  // All in order: nothing is copied, the segments are read by event.
  const dir2 = tempDir('sort-none');
  const ordered = spoolEvents(dir2, 2000, 17, EVENTS, () => true);
  for (const [type, buf] of ordered) {
    assert.equal(buf.inOrder, true, type);
    const r = sortSpool(jobOf(buf, path.join(dir2, 'none.ndjson'), 1 << 20));
    assert.deepEqual([r.copies, r.bytes], [[], 0]);
    assert.deepEqual(idsIn(r.files), await duckdbOrder(buf, type === 'track'));
  }
  assert.deepEqual(readdirSync(dir2).filter((f) => f.startsWith('none')), [], 'no copy made');
});

test(`events beyond ${MAX_SEGMENTS} segments share the last one, which is sorted; the rest are read as they are`, async () => {
  const dir = tempDir('sort-many');
  const many = Array.from({ length: MAX_SEGMENTS + 8 }, (_, i) => `ev ${String.fromCodePoint(0x41 + ((i * 7) % 26))}${i}`);
  const tracks = spoolEvents(dir, 6000, 19, many, () => true).get('track')!;
  assert.equal(tracks.events.length, many.length);
  assert.equal(tracks.segments.length, MAX_SEGMENTS);
  assert.equal(tracks.inOrder, false);
  assert.deepEqual(tracks.segments.map((sg) => sg.inOrder), [...Array(MAX_SEGMENTS - 1).fill(true), false]);
  const r = sortSpool(jobOf(tracks, path.join(dir, 'many.ndjson'), 1 << 26));
  assert.equal(r.bytes, tracks.segments.at(-1)!.bytes);
  assert.deepEqual(idsIn(r.files), await duckdbOrder(tracks, true));
});

test('a spool larger than the sort memory is sorted in runs and merged, to the same order', async () => {
  const dir = tempDir('sort-runs');
  const tracks = spoolEvents(dir, 4000, 11).get('track')!;
  const expected = await duckdbOrder(tracks, true);
  for (const memoryBytes of [1, 64 * 1024, 300 * 1024]) {
    const r = sortSpool(jobOf(tracks, path.join(dir, `runs-${memoryBytes}.ndjson`), memoryBytes));
    assert.ok(r.runs > 1, `memory ${memoryBytes}: ${r.runs} runs for ${r.bytes} bytes`);
    assert.equal(r.bytes, tracks.bytes);
    assert.deepEqual(idsIn(r.files), expected, `memory ${memoryBytes}`);
  }
  // Run files are removed after the merge.
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.run')), []);
});

test('SpoolSorter sorts in its worker thread, reports a bad spool as a WriterError, and refuses work once closed', async () => {
  const dir = tempDir('sorter');
  const tracks = spoolEvents(dir, 1500, 3).get('track')!;
  const sorter = new SpoolSorter(1, 0); // nothing inline: every sort goes to the worker
  try {
    const jobs = [0, 1, 2].map((i) => jobOf(tracks, path.join(dir, `w${i}.ndjson`), i === 2 ? 32 * 1024 : 1 << 26));
    const results = await Promise.all(jobs.map((j) => sorter.sort(j, tracks.bytes)));
    assert.deepEqual(results.map((r) => r.runs > 0), [false, false, true]);
    const expected = await duckdbOrder(tracks, true);
    for (const r of results) assert.deepEqual(idsIn(r.files), expected);
    // An index claiming fewer rows than the segments hold: the error names the file, the worker survives.
    writeFileSync(path.join(dir, 'short.idx'), readFileSync(tracks.indexPath).subarray(0, INDEX_ENTRY_BYTES * 10));
    await assert.rejects(sorter.sort({ ...jobs[0]!, indexPath: path.join(dir, 'short.idx'), outPath: path.join(dir, 'bad.ndjson') }, tracks.bytes), (err: Error) => err.name === 'WriterError' && /short\.idx ended after/.test(err.message));
    // A segment shorter than its index says: the error names the segment.
    const seg = tracks.segments[1]!;
    const short = path.join(dir, 'short-seg.ndjson');
    writeFileSync(short, readFileSync(seg.path).subarray(0, 100));
    const segments = tracks.segments.map((sg) => (sg.path === seg.path ? { ...sg, path: short } : sg));
    await assert.rejects(sorter.sort({ ...jobs[0]!, segments, outPath: path.join(dir, 'bad.ndjson') }, tracks.bytes), (err: Error) => err.name === 'WriterError' && err.message.includes('short-seg.ndjson ended after 100 bytes'));
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('bad')), [], 'no partial output left');
    const again = await sorter.sort({ ...jobs[0]!, outPath: path.join(dir, 'again.ndjson') }, tracks.bytes);
    assert.equal(again.bytes, tracks.bytes);
  } finally {
    await sorter.close();
  }
  await assert.rejects(sorter.sort(jobOf(tracks, path.join(dir, 'late.ndjson'), 1 << 20), tracks.bytes), /closed/);
});

test('SpoolSorter.prestart starts the worker ahead of the first sort; an unused prestarted worker neither holds the process nor blocks close', async () => {
  const dir = tempDir('prestart');
  const tracks = spoolEvents(dir, 400, 2).get('track')!;
  const used = new SpoolSorter(1, 0);
  used.prestart();
  used.prestart(); // idempotent: still one worker
  try {
    const r = await used.sort(jobOf(tracks, path.join(dir, 'p.ndjson'), 1 << 26), tracks.bytes);
    assert.equal(r.bytes, tracks.bytes);
    assert.deepEqual(idsIn(r.files), await duckdbOrder(tracks, true));
  } finally {
    await used.close();
  }
  const unused = new SpoolSorter(1, 0);
  unused.prestart();
  await unused.close();
  await assert.rejects(unused.sort(jobOf(tracks, path.join(dir, 'late.ndjson'), 1 << 20), tracks.bytes), /closed/);
});

test('rows skipped at append (committed by an earlier run) leave their event a segment with no rows: files and sorts skip it', async () => {
  const dir = tempDir('sort-skipped');
  const rows = (spec: Array<[string, number, number]>, events: string[]) => {
    const lines = spec.map(([id, r, ev]) => Buffer.from(JSON.stringify({ m: id, r, e: { event: events[ev] } }) + '\n'));
    const offsets = new Uint32Array(lines.length + 1);
    lines.forEach((l, i) => (offsets[i + 1] = offsets[i]! + l.length));
    return { bytes: Buffer.concat(lines), offsets, receivedAt: Float64Array.from(spec.map((s) => s[1])), events, eventOf: Uint32Array.from(spec.map((s) => s[2])) };
  };
  for (const scramble of [false, true]) {
    const buf = new SpoolBuffer('tracks', [], path.join(dir, `s${scramble}.ndjson`), 0, new Map());
    // 'Z' first: its two rows are skipped (from = 2), yet the event got an id and the first segment.
    buf.append(rows([['z1', 1, 0], ['z2', 2, 0], ['b1', 3, 1], ['a1', 4, 2], ['b2', 5, 1]], ['Z', 'B', 'A']), 2, 's', 3n, 5n);
    buf.append(rows([['a2', scramble ? 1 : 6, 0], ['b3', 7, 1]], ['A', 'B']), 0, 's', 6n, 7n);
    buf.close();
    assert.equal(buf.segments[0]!.bytes, 0);
    const r = sortSpool(jobOf(buf, path.join(dir, `out${scramble}.ndjson`), 1 << 20));
    assert.deepEqual(idsIn(r.files), scramble ? ['a2', 'a1', 'b1', 'b2', 'b3'] : ['a1', 'a2', 'b1', 'b2', 'b3']);
    assert.ok(!r.files.includes(buf.segments[0]!.path), 'the empty segment is not read');
    assert.equal(r.copies.length, scramble ? 1 : 0);
  }
});

test('a spool that adopts its sorted copy lists the copy for live reads, deletes the segments it copied at once, and the copy at discard', async () => {
  const dir = tempDir('sort-adopt');
  const inOrder = new Set(EVENTS.slice(0, 3));
  const tracks = spoolEvents(dir, 3000, 23, EVENTS, (e) => inOrder.has(e)).get('track')!;
  const before = linesOf(tracks.livePaths);
  assert.equal(before.length, tracks.rows);
  const r = sortSpool(jobOf(tracks, path.join(dir, 'tracks.sorted.ndjson'), 1 << 20));
  assert.ok(r.copies.length > 0 && r.files.length > r.copies.length, 'some segments copied, some kept');
  const copied = tracks.segments.filter((sg) => sg.bytes > 0 && !r.files.includes(sg.path)).map((sg) => sg.path);
  assert.ok(copied.length > 0);
  await tracks.adoptSorted(r.files);
  assert.deepEqual(tracks.livePaths, r.files);
  assert.deepEqual(linesOf(tracks.livePaths), before, 'the same rows, now read from the sorted copy');
  const left = new Set(readdirSync(dir).map((f) => path.join(dir, f)));
  for (const p of copied) assert.equal(left.has(p), false, `${p} deleted once copied`);
  for (const p of r.files) assert.equal(left.has(p), true, `${p} kept`);
  await tracks.discard();
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('tracks')), [], 'segments, copies and index all gone');
});
