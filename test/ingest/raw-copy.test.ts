import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { Ingestor } from '../../src/ingest/ingestor.ts';
import { RawCopySink, rawCopyFileRange } from '../../src/ingest/raw-copy.ts';
import { openLocalLake } from '../../src/lake.ts';
import { LocalStorage } from '../../src/storage/local-storage.ts';
import { LeaseLostError } from '../../src/errors.ts';
import { FileSource } from '../../src/source/file-source.ts';
import { SUB_POSITION_BITS, type RecordBatch, type Source } from '../../src/source/source.ts';
import { sampleLines } from '../../src/sample/generate.ts';
import { expectedAnswers, oracleEvents } from '../support/ground-truth.ts';
import { writeTestInput } from '../support/data.ts';
import { lakeAnswers } from '../support/lake-answers.ts';
import { tempDir } from '../support/tmp.ts';

/** The raw copy's objects of a lake, in (shard, first position) order, with their ranges. */
async function rawPieces(lake: string): Promise<Array<{ key: string; shard: string; first: bigint; last: bigint }>> {
  const { storage } = openLocalLake(lake);
  return (await storage.list('_raw', { recursive: true }))
    .map((o) => ({ key: o.key, ...rawCopyFileRange(o.key)! }))
    .sort((a, b) => (a.shard !== b.shard ? (a.shard < b.shard ? -1 : 1) : a.first < b.first ? -1 : 1));
}

test('ingest --raw-copy keeps every input byte (invalid lines, bad UTF-8 and gzip input too), once, and the copy re-ingests to the same lake', async () => {
  const dir = tempDir('raw');
  const lake = `${dir}/lake`;
  const { files, lines } = writeTestInput(dir, 1500, 81);
  // Bytes that are not UTF-8, and a line without a final newline.
  const odd = `${dir}/odd.ndjson`;
  writeFileSync(odd, Buffer.concat([Buffer.from('{"type":"track","event":"Bin \xff","anonymousId":"b1","messageId":"odd-1"}\n', 'latin1'), Buffer.from('{"type":"page","anonymousId":"b2","messageId":"odd-2","receivedAt":"2026-11-21T00:00:00Z"}')]));
  const { storage, catalog } = openLocalLake(lake);
  const stats = await new Ingestor(storage, catalog, { rawCopy: true }).run(new FileSource([...files, odd]));
  const pieces = await rawPieces(lake);
  assert.equal(new Set(pieces.map((p) => p.shard)).size, 3, 'one shard per input');
  assert.ok(pieces.every((p) => /^_raw\/file\/dt=\d{4}-\d{2}-\d{2}\//.test(p.key)));
  // Per input: the pieces, unzipped and joined, are the input's bytes (gunzipped for a .gz input).
  const inputs = [...files, odd].map((f) => (f.endsWith('.gz') ? gunzipSync(readFileSync(f)) : readFileSync(f)));
  const copies = [...new Set(pieces.map((p) => p.shard))].map((s) => Buffer.concat(pieces.filter((p) => p.shard === s).map((p) => gunzipSync(readFileSync(`${lake}/${p.key}`)))));
  const norm = (b: Buffer) => (b.at(-1) === 0x0a ? b : Buffer.concat([b, Buffer.from('\n')]));
  assert.deepEqual(copies.map((c) => c.toString('base64')).sort(), inputs.map((b) => norm(b).toString('base64')).sort(), 'byte for byte');
  // An independent reader (the gzip tool) sees every line of the copy, members and all.
  const viaGzip = execFileSync('gzip', ['-dc', ...pieces.map((p) => `${lake}/${p.key}`)], { maxBuffer: 1 << 30 });
  assert.equal(viaGzip.toString('base64'), Buffer.concat(copies).toString('base64'));
  const expectedLines = inputs.reduce((a, b) => a + norm(b).toString('latin1').split('\n').length - 1, 0);
  assert.equal(viaGzip.toString('latin1').split('\n').length - 1, expectedLines);

  // A second ingest of the same input writes no raw copy twice.
  const again = await new Ingestor(storage, catalog, { rawCopy: true }).run(new FileSource([...files, odd]));
  assert.equal(again.written, 0);
  assert.deepEqual((await rawPieces(lake)).map((p) => p.key), pieces.map((p) => p.key));

  // The copy is an input: ingested into a new lake it gives the same answers as the original.
  const other = `${dir}/other`;
  const o = openLocalLake(other);
  const replay = await new Ingestor(o.storage, o.catalog, {}).run(new FileSource(pieces.map((p) => `${lake}/${p.key}`)));
  assert.deepEqual([replay.written, replay.deadLettered], [stats.written, stats.deadLettered]);
  const expected = await expectedAnswers(lines, dir);
  const original = await lakeAnswers(lake, {});
  assert.equal(original.total, expected.valid + 1, 'the ground truth, plus the page of odd.ndjson (its line that is not UTF-8 is a dead letter)');
  assert.deepEqual(original.perEvent, expected.perEvent);
  assert.deepEqual(await lakeAnswers(other, {}), original);
});

/** A stream of batches flushed one by one, checking at each checkpoint that the raw copy holds every record up to it. */
class CheckpointedSource implements Source {
  readonly name = 'ck';
  readonly checkpoints: bigint[] = [];
  violations: string[] = [];
  constructor(private readonly lake: string, private readonly batches: string[][]) {}
  async *[Symbol.asyncIterator](): AsyncIterator<RecordBatch> {
    let pos = 0;
    for (const b of this.batches) yield { shard: 's1', fallbackReceivedAtMs: Date.UTC(2026, 10, 20), flushAfter: true, records: b.map((data) => ({ position: BigInt(++pos), data })) };
  }
  async checkpoint(_shard: string, position: bigint): Promise<void> {
    position >>= SUB_POSITION_BITS; // an event position: its record's
    const held = (await rawPieces(this.lake)).reduce((a, p) => (p.last > a ? p.last : a), -1n);
    if (held < position) this.violations.push(`checkpoint ${position} past the raw copy's ${held}`);
    // Every invalid record (by the test's oracle) up to the checkpoint is in the dead letters already.
    const { storage } = openLocalLake(this.lake);
    const dead = new Set<number>();
    for (const o of await storage.list('_deadletter', { recursive: true })) {
      for (const l of (await storage.get(o.key))!.toString('utf8').split('\n')) if (l !== '') dead.add(Number(JSON.parse(l).record));
    }
    const lines = this.batches.flat();
    for (let r = 1; r <= Number(position); r++) {
      if (!oracleEvents(lines[r - 1]!).every((e) => e.valid) && !dead.has(r)) this.violations.push(`checkpoint ${position} past record ${r}, not in the dead letters`);
    }
    this.checkpoints.push(position);
  }
}

test('a checkpoint never passes a record the raw copy or the dead letters do not hold; a restart copies only what is new', async () => {
  const lake = `${tempDir('raw-ck')}/lake`;
  const { storage, catalog } = openLocalLake(lake);
  const lines = [...sampleLines({ count: 400, seed: 83, invalidRate: 0.05 })];
  assert.ok(lines.filter((l) => !oracleEvents(l).every((e) => e.valid)).length >= 10, 'invalid records to dead-letter');
  const batches = Array.from({ length: 8 }, (_, i) => lines.slice(i * 50, (i + 1) * 50));
  const source = new CheckpointedSource(lake, batches.slice(0, 5));
  await new Ingestor(storage, catalog, { rawCopy: true, decodeWorkers: 0 }).run(source);
  assert.deepEqual(source.violations, []);
  assert.equal(source.checkpoints.at(-1), 250n);
  // The stream again from the start, with three more batches: only records 251–400 are copied.
  const more = new CheckpointedSource(lake, batches);
  await new Ingestor(storage, catalog, { rawCopy: true, decodeWorkers: 0 }).run(more);
  assert.deepEqual(more.violations, []);
  const pieces = await rawPieces(lake);
  const copied = pieces.flatMap((p) => gunzipSync(readFileSync(`${lake}/${p.key}`)).toString('utf8').split('\n').slice(0, -1));
  assert.deepEqual(copied, lines, 'every record once, in order');
  // The second run's pieces start where the first run's end: nothing copied twice, nothing skipped.
  assert.equal(pieces[0]!.first, 1n);
  for (let i = 1; i < pieces.length; i++) assert.equal(pieces[i]!.first, pieces[i - 1]!.last + 1n);
  assert.ok(pieces.some((p) => p.first === 251n));
  assert.equal(pieces.at(-1)!.last, 400n);
});

test('RawCopySink: pieces rotate at their size; a sink that recovers a mark inside a batch copies only the records after it', async () => {
  const dir = tempDir('raw-sink');
  const spool = `${dir}/spool`;
  mkdirSync(spool);
  const storage = new LocalStorage(`${dir}/lake`);
  const lines = Array.from({ length: 30 }, (_, i) => `{"n":${i}}`);
  const nd = (from: number, to: number): RecordBatch => {
    const text = lines.slice(from, to).join('\n') + '\n';
    return { shard: 'a', fallbackReceivedAtMs: 0, records: [], ndjson: { bytes: new Uint8Array(Buffer.from(text)), firstPosition: BigInt(from + 1), lines: to - from, startsFile: from === 0 } };
  };
  const sink = new RawCopySink(storage, 'src', spool, 60);
  for (let i = 0; i < 20; i += 5) await sink.add(nd(i, i + 5)); // 5 lines of ~9 bytes: a piece every 2 batches
  await sink.flush();
  const keys = (await storage.list('_raw', { recursive: true })).map((o) => o.key);
  assert.deepEqual(keys.map((k) => { const r = rawCopyFileRange(k)!; return [r.first, r.last]; }).sort((x, y) => Number(x[0]! - y[0]!)), [[1n, 10n], [11n, 20n]]);
  // A later run, re-reading from line 16 in batches that straddle the mark (20).
  const next = new RawCopySink(storage, 'src', spool, 1024);
  await next.recover();
  await next.add(nd(15, 25));
  await next.add(nd(25, 30));
  await next.flush();
  const all = (await storage.list('_raw', { recursive: true })).map((o) => ({ r: rawCopyFileRange(o.key)!, text: gunzipSync(readFileSync(`${dir}/lake/${o.key}`)).toString() }));
  all.sort((x, y) => Number(x.r.first - y.r.first));
  assert.deepEqual(all.map((x) => [x.r.first, x.r.last]), [[1n, 10n], [11n, 20n], [21n, 30n]]);
  assert.equal(all.map((x) => x.text).join(''), lines.join('\n') + '\n');
  // Pieces are series of gzip members: each batch one member.
  assert.equal(gunzipSync(Buffer.concat([gzipSync('a\n'), gzipSync('b\n')])).toString(), 'a\nb\n');
});

test('RawCopySink.flush waits for a piece add() is storing (a checkpoint must not pass its records)', async () => {
  const dir = tempDir('raw-flush');
  mkdirSync(`${dir}/spool`);
  const inner = new LocalStorage(`${dir}/lake`);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const storage = Object.assign(Object.create(inner) as LocalStorage, {
    putFile: async (key: string, local: string) => {
      await gate;
      return inner.putFile(key, local);
    },
  });
  const sink = new RawCopySink(storage, 'src', `${dir}/spool`, 10);
  const batch: RecordBatch = { shard: 'a', fallbackReceivedAtMs: 0, records: [{ position: 1n, data: '{"n":1}' }, { position: 2n, data: '{"n":2}' }] };
  const adding = sink.add(batch); // over 10 bytes: the piece is stored at once, held by the gate
  await new Promise((r) => setTimeout(r, 20));
  let flushed = false;
  const flushing = sink.flush().then(() => (flushed = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(flushed, false, 'flush waits for the piece being stored');
  release();
  await Promise.all([adding, flushing]);
  assert.deepEqual((await inner.list('_raw', { recursive: true })).map((o) => rawCopyFileRange(o.key)), [{ shard: 'a', first: 1n, last: 2n }]);
});

/** Batches without hand-overs; the stream pauses after `pauseAfter` batches until released. Checkpoints are checked as above. */
class PausingSource extends CheckpointedSource {
  release!: () => void;
  private readonly released = new Promise<void>((r) => (this.release = r));
  constructor(lake: string, private readonly all: string[][], private readonly pauseAfter: number) {
    super(lake, all);
  }
  override async *[Symbol.asyncIterator](): AsyncIterator<RecordBatch> {
    let pos = 0;
    for (const [i, b] of this.all.entries()) {
      if (i === this.pauseAfter) await this.released;
      yield { shard: 's1', fallbackReceivedAtMs: Date.UTC(2026, 10, 20), records: b.map((data) => ({ position: BigInt(++pos), data })) };
    }
  }
}

test('raw pieces are stored by size or age, not at each commit; checkpoints wait for them, and a quiet stream still checkpoints', async () => {
  const lake = `${tempDir('raw-age')}/lake`;
  const { storage, catalog } = openLocalLake(lake);
  const lines = [...sampleLines({ count: 400, seed: 85, invalidRate: 0.05 })];
  const batches = Array.from({ length: 8 }, (_, i) => lines.slice(i * 50, (i + 1) * 50));
  // Many commits (1 KiB files), one raw piece: stored at the end; no checkpoint passed it meanwhile.
  const busy = new PausingSource(lake, batches, -1);
  const stats = await new Ingestor(storage, catalog, { rawCopy: true, decodeWorkers: 0, targetFileBytes: 1024 }).run(busy);
  assert.ok(stats.files > 10, `${stats.files} commits`);
  assert.deepEqual(busy.violations, []);
  assert.equal((await rawPieces(lake)).length, 1, 'one piece, not one per commit');
  assert.equal(busy.checkpoints.at(-1), 400n);

  // A quiet stream: after two batches nothing arrives; the time cap (300 ms) stores the piece and files, and the checkpoint moves.
  const lake2 = `${tempDir('raw-quiet')}/lake`;
  const l2 = openLocalLake(lake2);
  const quiet = new PausingSource(lake2, batches, 2);
  const run = new Ingestor(l2.storage, l2.catalog, { rawCopy: true, decodeWorkers: 0, maxFileAgeMs: 300 }).run(quiet);
  for (let i = 0; i < 100 && quiet.checkpoints.at(-1) !== 100n; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(quiet.checkpoints.at(-1), 100n, 'checkpointed through the second batch while the stream is quiet');
  assert.deepEqual((await rawPieces(lake2)).map((p) => [p.first, p.last]), [[1n, 100n]]);
  quiet.release();
  await run;
  assert.deepEqual(quiet.violations, []);
  const copied = (await rawPieces(lake2)).flatMap((p) => gunzipSync(readFileSync(`${lake2}/${p.key}`)).toString('utf8').split('\n').slice(0, -1));
  assert.deepEqual(copied, lines);
});

test('RawCopySink stores no piece of a shard whose lease is lost (the new holder copies it from the checkpoint)', async () => {
  const dir = tempDir('raw-fence');
  mkdirSync(`${dir}/spool`);
  const storage = new LocalStorage(`${dir}/lake`);
  let held = true;
  const fence = async (shards: readonly string[]) => {
    if (!held) throw new LeaseLostError(`shard ${shards[0]} is not held by this consumer any more`);
  };
  const sink = new RawCopySink(storage, 'src', `${dir}/spool`, 1 << 20, 60_000, fence);
  await sink.add({ shard: 'a', fallbackReceivedAtMs: 0, records: [{ position: 1n, data: '{"n":1}' }] });
  await sink.flush();
  await sink.add({ shard: 'a', fallbackReceivedAtMs: 0, records: [{ position: 2n, data: '{"n":2}' }] });
  held = false;
  await assert.rejects(sink.flush(), LeaseLostError);
  await sink.discard();
  assert.deepEqual((await storage.list('_raw', { recursive: true })).map((o) => rawCopyFileRange(o.key)), [{ shard: 'a', first: 1n, last: 1n }]);
});
