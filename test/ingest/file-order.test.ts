import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { openLocalLake } from '../../src/lake.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { SpoolBuffer } from '../../src/writer/spool.ts';
import { tempDir } from '../support/tmp.ts';

function page(i: number, receivedAtMs: number): string {
  return JSON.stringify({ type: 'page', name: 'Home', anonymousId: `a${i % 5}`, messageId: `p${String(i).padStart(5, '0')}`, receivedAt: new Date(receivedAtMs).toISOString() });
}

interface InputEvent {
  messageId: string;
  receivedAt: string;
  event?: string;
}

/**
 * Ingests `lines` (two days, 2026-11-20 and -21) into a fresh lake and checks that `table` has two
 * files of `rowsPerFile` rows, each holding its day's input rows in the order `compare` gives them,
 * ties in arrival order (the expected order is a stable sort of the input, made here independently).
 */
async function assertFileOrder(dir: string, lines: string[], table: string, rowsPerFile: number, compare: (a: InputEvent, b: InputEvent) => number): Promise<void> {
  writeFileSync(path.join(dir, 'in.ndjson'), lines.join('\n') + '\n');
  const lake = path.join(dir, 'lake');
  const { storage, catalog } = openLocalLake(lake);
  const stats = await new Ingestor(storage, catalog).run(new FileSource([path.join(dir, 'in.ndjson')]));
  assert.equal(stats.written, lines.length);
  const files = readdirSync(path.join(lake, table), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.parquet'));
  assert.equal(files.length, 2);
  const conn = await (await DuckDBInstance.create(':memory:')).connect();
  try {
    for (const f of files) {
      const rows = (await conn.runAndReadAll(`SELECT message_id FROM read_parquet('${path.join(lake, table, f)}', file_row_number=true) ORDER BY file_row_number`)).getRows();
      assert.equal(rows.length, rowsPerFile);
      const day = Date.parse(f.includes('2026-11-20') ? '2026-11-20T00:00:00Z' : '2026-11-21T00:00:00Z');
      const expected = lines
        .map((l) => JSON.parse(l) as InputEvent)
        .filter((e) => Date.parse(e.receivedAt) >= day && Date.parse(e.receivedAt) < day + 86_400_000)
        .sort(compare)
        .map((e) => e.messageId);
      assert.deepEqual(rows.map((r) => r[0]), expected, f);
    }
  } finally {
    conn.closeSync();
  }
}

test('pages files are ordered by received_at, ties in arrival order, whether the spool arrived in order (written as it is) or not (sorted)', async () => {
  const day1 = Date.parse('2026-11-20T00:00:00Z');
  const day2 = Date.parse('2026-11-21T00:00:00Z');
  const lines: string[] = [];
  // Day 1 in time order, with runs of equal receivedAt; day 2 in a scrambled order, with ties too.
  for (let i = 0; i < 3000; i++) lines.push(page(i, day1 + Math.floor(i / 3) * 1000));
  for (let i = 3000; i < 6000; i++) lines.push(page(i, day2 + ((i * 7919) % 1000) * 1000));
  await assertFileOrder(tempDir('order'), lines, 'pages', 3000, (a, b) => Date.parse(a.receivedAt) - Date.parse(b.receivedAt));
});

test('tracks files are ordered by event (UTF-8 bytes), then received_at, ties in arrival order, when segments are read as they are and when some are sorted', async () => {
  const events = ['Viewed', 'Clicked', 'Café ☕', '😀 smile', '\uFFFD repl', 'a/b', 'Order'];
  const day1 = Date.parse('2026-11-20T00:00:00Z');
  const day2 = Date.parse('2026-11-21T00:00:00Z');
  const lines: string[] = [];
  const track = (i: number, event: string, at: number) =>
    JSON.stringify({ type: 'track', event, anonymousId: `a${i % 7}`, messageId: `t${String(i).padStart(5, '0')}`, receivedAt: new Date(at).toISOString() });
  // Day 1 in time order (every segment read as it is); day 2 in time order except 'Clicked' and 'a/b' (sorted).
  for (let i = 0; i < 4000; i++) lines.push(track(i, events[(i * 5) % events.length]!, day1 + Math.floor(i / 4) * 1000));
  for (let i = 4000; i < 8000; i++) {
    const event = events[(i * 3) % events.length]!;
    const scrambled = event === 'Clicked' || event === 'a/b';
    lines.push(track(i, event, day2 + (scrambled ? ((i * 7919) % 1000) : Math.floor((i - 4000) / 4)) * 1000));
  }
  await assertFileOrder(tempDir('order-tracks'), lines, 'tracks', 4000, (a, b) => Buffer.compare(Buffer.from(a.event!), Buffer.from(b.event!)) || Date.parse(a.receivedAt) - Date.parse(b.receivedAt));
});

test('SpoolBuffer.inOrder: true only while each segment (one per event name) sees receivedAt never decrease, across appends', () => {
  const dir = tempDir('inorder');
  const rows = (received: number[], events: string[] = [], eventOf: number[] = []) => {
    const line = Buffer.from('{"m":"x","r":0,"t":0,"o":null,"s":0,"e":{}}\n');
    return {
      bytes: Buffer.concat(received.map(() => line)),
      offsets: Uint32Array.from({ length: received.length + 1 }, (_, i) => i * line.length),
      receivedAt: Float64Array.from(received),
      events,
      eventOf: Uint32Array.from(received.map((_, i) => eventOf[i] ?? 0)),
    };
  };
  const mk = (name: string) => new SpoolBuffer('pages', [['dt', '2026-11-20']], path.join(dir, name), 0, new Map());
  const a = mk('a.ndjson');
  a.append(rows([1, 2, 2]), 0, 's', 1n, 3n);
  a.append(rows([2, 5]), 0, 's', 4n, 5n);
  assert.equal(a.inOrder, true);
  a.append(rows([4]), 0, 's', 6n, 6n); // earlier than the last row
  assert.equal(a.inOrder, false);
  // Tracks: each event name in a segment of its own, so interleaved events stay in order while each one's receivedAt does.
  const b = mk('b.ndjson');
  b.append(rows([1, 5, 2, 6], ['Clicked', 'Viewed'], [0, 1, 0, 1]), 0, 's', 1n, 4n);
  assert.equal(b.inOrder, true);
  assert.deepEqual(b.segments.map((sg) => path.basename(sg.path)), ['b.ndjson', 'b.1.ndjson']);
  b.append(rows([3, 7], ['Viewed', 'Clicked'], [0, 1]), 0, 's', 5n, 6n); // Viewed goes back in time
  assert.equal(b.inOrder, false);
  assert.deepEqual(b.segments.map((sg) => sg.inOrder), [true, false]);
  for (const s of [a, b]) s.close();
});
