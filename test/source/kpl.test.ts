import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { aggregate, deaggregate, effectiveHashKey, type Deaggregated } from '../../src/source/kpl.ts';

const MAGIC = [0xf3, 0x89, 0x9a, 0xc2];
const te = new TextEncoder();
const td = new TextDecoder();

/** Frames protobuf bytes as the KPL does: magic, body, MD5(body). Independent of the code under test. */
function seal(body: number[] | Uint8Array): Uint8Array {
  const b = Uint8Array.from(body);
  return Uint8Array.from([...MAGIC, ...b, ...createHash('md5').update(b).digest()]);
}

/** A readable view of a result for deepEqual. */
function text(d: Deaggregated): unknown {
  if (d.kind !== 'aggregated') return d;
  return d.records.map((r) => ({ ...r, data: td.decode(r.data) }));
}

// Built by hand from the .proto: tables 'a','b' and ehk '5'; records (pk 0, "hi"), (pk 1, ""), (pk 0, ehk 0, "x").
const HAND_BODY = [
  0x0a, 0x01, 0x61, // partition_key_table: "a"
  0x0a, 0x01, 0x62, // partition_key_table: "b"
  0x12, 0x01, 0x35, // explicit_hash_key_table: "5"
  0x1a, 0x06, 0x08, 0x00, 0x1a, 0x02, 0x68, 0x69, // record { pk 0, data "hi" }
  0x1a, 0x04, 0x08, 0x01, 0x1a, 0x00, // record { pk 1, data "" }
  0x1a, 0x07, 0x08, 0x00, 0x10, 0x00, 0x1a, 0x01, 0x78, // record { pk 0, ehk 0, data "x" }
];
const HAND_RECORDS = [
  { partitionKey: 'a', data: 'hi' },
  { partitionKey: 'b', data: '' },
  { partitionKey: 'a', data: 'x', explicitHashKey: '5' },
];

test('a hand-built aggregated record decodes to its records, and aggregate() produces exactly those bytes', () => {
  const bytes = seal(HAND_BODY);
  assert.deepEqual(text(deaggregate(bytes)), HAND_RECORDS);
  const built = aggregate(HAND_RECORDS.map((r) => ({ ...r, data: te.encode(r.data) })));
  assert.deepEqual(Buffer.from(built).toString('hex'), Buffer.from(bytes).toString('hex'));
});

test('round trip: multi-byte lengths, repeated and non-ASCII keys, empty and large data; data are views, not copies', () => {
  const records = Array.from({ length: 300 }, (_, i) => ({
    partitionKey: i % 7 === 0 ? 'clé-é-🙂' : `pk-${i % 40}`,
    data: Uint8Array.from({ length: i === 5 ? 70_000 : (i * 37) % 300 }, (_, j) => (i + j) % 256),
    ...(i % 11 === 0 ? { explicitHashKey: String(2n ** 127n + BigInt(i)) } : {}),
  }));
  const agg = aggregate(records);
  const out = deaggregate(agg);
  assert.equal(out.kind, 'aggregated');
  assert.deepEqual(out.records, records);
  for (const r of out.records) assert.equal(r.data.buffer, agg.buffer, 'zero-copy');
  // The tables hold each key once: 40 pk-N keys + the accented one, 28 distinct explicit hash keys.
  const body = agg.subarray(4, agg.length - 16);
  const pkEntries = (Buffer.from(body).toString('latin1').match(/pk-\d+/g) ?? []).length;
  assert.equal(pkEntries, 40);
});

test('records without the magic, or too short to hold a digest after it, are plain', () => {
  for (const s of ['{"type":"track","event":"E"}', '', '[1,2]']) assert.deepEqual(deaggregate(te.encode(s)), { kind: 'plain' });
  assert.deepEqual(deaggregate(Uint8Array.from(MAGIC)), { kind: 'plain' });
  assert.deepEqual(deaggregate(Uint8Array.from([...MAGIC, ...new Uint8Array(16)])), { kind: 'plain' });
  assert.deepEqual(deaggregate(Uint8Array.from([0xf3, 0x89, 0x9a, 0xc3, ...HAND_BODY, ...new Uint8Array(16)])), { kind: 'plain' });
  assert.throws(() => aggregate([]), RangeError);
});

test('a changed byte in the body or the digest is an MD5 mismatch', () => {
  const good = seal(HAND_BODY);
  for (const at of [4, 10, good.length - 17, good.length - 16, good.length - 1]) {
    const bad = good.slice();
    bad[at]! ^= 0x01;
    const d = deaggregate(bad);
    assert.equal(d.kind, 'corrupt');
    assert.match(d.reason, /^MD5 mismatch/);
  }
});

test('truncation at every offset never throws: plain when too short, else corrupt', () => {
  const full = aggregate(HAND_RECORDS.map((r) => ({ ...r, data: te.encode(r.data) })));
  for (let n = 0; n < full.length; n++) {
    const d = deaggregate(full.subarray(0, n));
    assert.equal(d.kind, n <= 20 ? 'plain' : 'corrupt', `prefix of ${n}`);
  }
});

test('a body cut at every offset and resealed decodes to a prefix of the records or is corrupt, never throws', () => {
  const records = Array.from({ length: 6 }, (_, i) => ({ partitionKey: `k${i % 3}`, data: te.encode(`payload-${i}-${'z'.repeat(i * 60)}`) }));
  const body = aggregate(records).subarray(4, -16);
  const reasons = new Set<string>();
  let prefixes = 0;
  for (let n = 1; n < body.length; n++) {
    const d = deaggregate(seal(body.subarray(0, n)));
    if (d.kind === 'corrupt') reasons.add(d.reason.replace(/\d+/g, 'N'));
    else {
      assert.equal(d.kind, 'aggregated', `cut at ${n}`);
      assert.deepEqual(d.records, records.slice(0, d.records.length), `cut at ${n}`);
      prefixes++;
    }
  }
  assert.ok(prefixes >= records.length - 1, `cuts at record boundaries decode (${prefixes})`);
  assert.ok([...reasons].some((r) => r.startsWith('truncated varint')), [...reasons].join('; '));
  assert.ok([...reasons].some((r) => r.includes('claims N bytes but only N remain')), [...reasons].join('; '));
});

test('unknown fields of every wire type are skipped, at the top level and inside records (tags included)', () => {
  const body = [
    0x78, 0x96, 0x01, // field 15 varint 150
    0x49, 1, 2, 3, 4, 5, 6, 7, 8, // field 9 fixed64
    0x0a, 0x01, 0x61, // partition_key_table: "a"
    0x55, 1, 2, 3, 4, // field 10 fixed32
    0x5a, 0x02, 0xff, 0xfe, // field 11 bytes
    0x63, 0x08, 0x01, 0x6b, 0x6c, 0x64, // group 12 { field 1 varint; group 13 {} }
    0x08, 0x05, // field 1 as a varint: the known number with another wire type is an unknown field
    0x1a, 0x11, // record (17 bytes):
    0x08, 0x00, // pk 0
    0x22, 0x06, 0x0a, 0x01, 0x6b, 0x12, 0x01, 0x76, // tags { key "k", value "v" }
    0x28, 0x07, // field 5 varint
    0x1a, 0x03, 0x61, 0x62, 0x63, // data "abc"
    0xf8, 0xff, 0xff, 0xff, 0x0f, 0x00, // field 2^29-1 (the largest), varint 0
  ];
  assert.deepEqual(text(deaggregate(seal(body))), [{ partitionKey: 'a', data: 'abc' }]);
});

test('corrupt records say why', () => {
  const pkA = [0x0a, 0x01, 0x61];
  const cases: Array<[number[], RegExp]> = [
    [[...pkA, 0x0e, 0x00], /unknown wire type 6 \(field 1\) at byte 7/],
    [[...pkA, 0x0f, 0x00], /unknown wire type 7/],
    [[...pkA, 0x1a, 0x04, 0x08, 0x01, 0x1a, 0x00], /record 0 at byte 7: partition key index 1 is outside the table of 1/],
    [[...pkA, 0x1a, 0x06, 0x08, 0x00, 0x10, 0x00, 0x1a, 0x00], /explicit hash key index 0 is outside the table of 0/],
    [[...pkA, 0x1a, 0x02, 0x08, 0x00], /record 0 at byte 7: required data is missing/],
    [[...pkA, 0x1a, 0x02, 0x1a, 0x00], /required partition_key_index is missing/],
    [[...pkA, 0x1a, 0x0e, 0x08, ...new Array(11).fill(0xff), 0x1a, 0x00], /varint \(partition key index\) longer than 10 bytes at byte 10/],
    [[...pkA, 0x00, 0x00], /field number 0 out of range at byte 7/],
    [[...pkA, 0x0c], /end of group 1 at byte 7 without a start/],
    [[...pkA, 0x63, 0x08, 0x01], /group \(field 12\) opened at byte 7 is not closed/],
    [[...pkA, 0x63, 0x6c], /end of group 13 at byte 8 closes group 12/],
    [[...pkA, 0x1a, 0x09, 0x08, 0x00], /record 0 at byte 7 claims 9 bytes but only 2 remain/],
    [[...pkA, 0x49, 1, 2, 3], /truncated fixed-width field 9 at byte 7/],
    [[...pkA, 0x1a, 0x04, 0x08, 0x00, 0x1a, 0x80], /truncated varint \(data length\) at byte 12/],
    [[...pkA, ...new Array(101).fill(0x63)], /groups nested deeper than 100/],
  ];
  for (const [body, reason] of cases) {
    const d = deaggregate(seal(body));
    assert.equal(d.kind, 'corrupt', `${reason}`);
    assert.match(d.reason, reason);
  }
});

test('effectiveHashKey is the MD5 of the partition key as an unsigned 128-bit integer, unless explicit', () => {
  assert.equal(effectiveHashKey('a'), 0x0cc175b9c0f1b6a831c399e269772661n);
  assert.equal(effectiveHashKey('a', '42'), 42n);
  assert.ok(effectiveHashKey('pk-7') < 2n ** 128n);
});
