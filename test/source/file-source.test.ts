import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { FileSource } from '../../src/source/file-source.ts';
import { rng } from '../../src/sample/generate.ts';
import { tempDir } from '../support/tmp.ts';

/** Lines of random lengths (some longer than a 1 MiB read, some over the line limit), multi-byte text included. */
function makeLines(seed: number, n: number, maxLineChars: number): string[] {
  const rand = rng(seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = rand();
    const len = r < 0.01 ? maxLineChars + Math.floor(rand() * 3 * 1024 * 1024) : r < 0.05 ? Math.floor(rand() * maxLineChars) : Math.floor(rand() * 3000);
    lines.push(`${i}:` + 'é☕x'.repeat(Math.ceil(len / 3)).slice(0, len));
  }
  return lines;
}

/** Reads every batch, handing each batch's bytes back right after copying its lines out (as the Ingestor does). */
async function readBack(source: FileSource): Promise<{ lines: Map<bigint, string>; oversize: Map<bigint, number>; reusedBatchBuffers: number }> {
  const lines = new Map<bigint, string>();
  const oversize = new Map<bigint, number>();
  const seen = new Set<ArrayBufferLike>();
  let reusedBatchBuffers = 0;
  for await (const batch of source) {
    for (const r of batch.records) {
      assert.notEqual(r.oversizeBytes, undefined, 'a file source yields records only for over-long lines');
      oversize.set(r.position, r.oversizeBytes!);
    }
    const nd = batch.ndjson;
    if (nd === undefined) continue;
    if (seen.has(nd.bytes.buffer)) reusedBatchBuffers++;
    seen.add(nd.bytes.buffer);
    const text = Buffer.from(nd.bytes.buffer, nd.bytes.byteOffset, nd.bytes.byteLength).toString('utf8');
    assert.ok(text.endsWith('\n'), 'a batch ends at a line end');
    const got = text.slice(0, -1).split('\n');
    assert.equal(got.length, nd.lines);
    got.forEach((l, i) => lines.set(nd.firstPosition + BigInt(i), l));
    nd.bytes.fill(0x23); // what the pipeline leaves behind must not show up in a later batch
    source.recycle(nd.bytes);
  }
  return { lines, oversize, reusedBatchBuffers };
}

for (const gz of [false, true]) {
  test(`lines read back exactly while batch and read buffers are reused${gz ? ' (gzip)' : ''}, over-long lines reported with their size`, async () => {
    const dir = tempDir('fsrc');
    const maxLineChars = 1024 * 1024;
    const lines = makeLines(gz ? 2 : 1, 4000, maxLineChars);
    const file = path.join(dir, gz ? 'in.ndjson.gz' : 'in.ndjson');
    const text = lines.join('\n') + '\n';
    writeFileSync(file, gz ? gzipSync(text) : text);
    const got = await readBack(new FileSource([file], { maxLineChars }));
    let over = 0;
    lines.forEach((l, i) => {
      const pos = BigInt(i + 1);
      const bytes = Buffer.byteLength(l);
      // A line is yielded whole, or reported over-long with its exact size. The limit bounds memory
      // (it is checked as reads arrive), so only lines longer than it plus one read are sure to be cut;
      // shorter ones reach the decoder, which dead-letters anything above Segment's limits.
      if (got.oversize.has(pos)) {
        over++;
        assert.equal(got.oversize.get(pos), bytes, `line ${pos}: over-long, reported with its size`);
        assert.ok(bytes > maxLineChars, `line ${pos} (${bytes} bytes) is not over the limit`);
      } else {
        assert.ok(bytes <= maxLineChars + 1024 * 1024, `line ${pos} (${bytes} bytes) should have been cut`);
        assert.equal(got.lines.get(pos), l, `line ${pos}`);
      }
    });
    assert.ok(over > 0, 'the input has over-long lines');
    assert.equal(got.lines.size + got.oversize.size, lines.length);
    assert.ok(got.reusedBatchBuffers > 0, 'recycled batch buffers are used again');
  });
}

test('a reader that stops early closes the files at once (plain and gzip), not at garbage collection', async () => {
  const dir = tempDir('fsstop');
  const line = JSON.stringify({ type: 'track', event: 'E', anonymousId: 'a', properties: { pad: 'x'.repeat(900) } }) + '\n';
  const text = line.repeat(20_000); // ~19 MB: many read chunks, so stopping after one leaves the file open mid-way
  writeFileSync(path.join(dir, 'a.ndjson'), text);
  writeFileSync(path.join(dir, 'b.ndjson.gz'), gzipSync(text));
  const openFds = () => readdirSync('/proc/self/fd').length;
  for (const name of ['a.ndjson', 'b.ndjson.gz']) {
    const before = openFds();
    const source = new FileSource([path.join(dir, name)]);
    let batches = 0;
    for await (const batch of source) {
      assert.ok(batch.ndjson !== undefined && batch.ndjson.lines > 0);
      if (++batches === 1) {
        assert.equal(openFds(), before + 1, `${name}: open while read`);
        break;
      }
    }
    assert.equal(openFds(), before, `${name}: closed once the reader stopped`);
    assert.ok(source.progress().bytes < text.length, `${name}: not read to the end`);
  }
});
