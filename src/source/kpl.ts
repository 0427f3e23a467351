/**
 * The Kinesis Producer Library (KPL) aggregated record format, as specified in amazon-kinesis-producer's
 * aggregation-format.md and read by the KCL (AggregatorUtil):
 *
 *   4 magic bytes F3 89 9A C2 | protobuf AggregatedRecord | 16-byte MD5 of the protobuf bytes
 *
 *   message AggregatedRecord { repeated string partition_key_table = 1; repeated string explicit_hash_key_table = 2;
 *                              repeated Record records = 3; }
 *   message Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
 *                    required bytes data = 3; repeated Tag tags = 4; }
 *   message Tag { required string key = 1; optional string value = 2; }          (proto2)
 *
 * The protobuf subset is hand-written (varints and length-delimited fields; other wire types are skipped as
 * protobuf does) to avoid a dependency. Like the KCL, a record that lacks the magic or has at most 16 bytes
 * after it is 'plain'. Unlike the KCL, which passes a record with the magic but a bad checksum or protobuf
 * through as if plain, this reports 'corrupt' with the reason: such bytes (F3 89 9A C2 is not valid UTF-8)
 * would fail as JSON anyway, and the reason is what a dead letter needs.
 */
import { createHash } from 'node:crypto';

export type Deaggregated =
  | { kind: 'plain' }
  | { kind: 'aggregated'; records: Array<{ partitionKey: string; data: Uint8Array; explicitHashKey?: string }> }
  | { kind: 'corrupt'; reason: string };

/** One user record to aggregate. */
export interface UserRecord {
  partitionKey: string;
  data: Uint8Array;
  /** A decimal hash key in [0, 2^128) that overrides the MD5 of the partition key. */
  explicitHashKey?: string;
}

export const KPL_MAGIC: Uint8Array = Uint8Array.of(0xf3, 0x89, 0x9a, 0xc2);
const DIGEST_BYTES = 16;
/** Protobuf's own default nesting limit, for groups in skipped fields. */
const MAX_GROUP_DEPTH = 100;

const PLAIN: Deaggregated = Object.freeze({ kind: 'plain' });
const utf8 = new TextDecoder();
const utf8Encoder = new TextEncoder();

/** Splits a KPL aggregated record into its user records (their `data` are views into `data`, not copies). Never throws. */
export function deaggregate(data: Uint8Array): Deaggregated {
  if (data.length <= KPL_MAGIC.length + DIGEST_BYTES || !startsWithMagic(data)) return PLAIN;
  const end = data.length - DIGEST_BYTES;
  const expected = data.subarray(end);
  const actual = createHash('md5').update(data.subarray(KPL_MAGIC.length, end)).digest();
  if (!actual.equals(expected)) {
    return { kind: 'corrupt', reason: `MD5 mismatch: trailer ${Buffer.from(expected).toString('hex')}, computed ${actual.toString('hex')}` };
  }
  try {
    return { kind: 'aggregated', records: readAggregatedRecord(new Reader(data, KPL_MAGIC.length, end)) };
  } catch (e) {
    if (e instanceof Corrupt) return { kind: 'corrupt', reason: e.message };
    throw e;
  }
}

/** Builds what the KPL sends for `records` (partition and explicit hash keys deduplicated into the tables). */
export function aggregate(records: UserRecord[]): Uint8Array {
  if (records.length === 0) throw new RangeError('aggregate: no records (an empty aggregate would read back as plain)');
  const pkIndex = new Map<string, number>();
  const ehkIndex = new Map<string, number>();
  const indexOf = (table: Map<string, number>, key: string) => {
    let i = table.get(key);
    if (i === undefined) table.set(key, (i = table.size));
    return i;
  };
  const encoded = records.map((r) => ({
    pk: indexOf(pkIndex, r.partitionKey),
    ehk: r.explicitHashKey === undefined ? undefined : indexOf(ehkIndex, r.explicitHashKey),
    data: r.data,
  }));
  const pkBytes = [...pkIndex.keys()].map((k) => utf8Encoder.encode(k));
  const ehkBytes = [...ehkIndex.keys()].map((k) => utf8Encoder.encode(k));
  const recordSize = (r: (typeof encoded)[number]) =>
    1 + varintSize(r.pk) + (r.ehk === undefined ? 0 : 1 + varintSize(r.ehk)) + fieldSize(r.data.length);
  const sizes = encoded.map(recordSize);
  const body = [...pkBytes, ...ehkBytes].reduce((n, b) => n + fieldSize(b.length), 0) + sizes.reduce((n, s) => n + fieldSize(s), 0);

  const out = new Uint8Array(KPL_MAGIC.length + body + DIGEST_BYTES);
  out.set(KPL_MAGIC);
  const w = new Writer(out, KPL_MAGIC.length);
  for (const b of pkBytes) w.bytesField(1, b);
  for (const b of ehkBytes) w.bytesField(2, b);
  encoded.forEach((r, i) => {
    w.tag(3, WIRE_LEN);
    w.varint(sizes[i]!);
    w.tag(1, WIRE_VARINT);
    w.varint(r.pk);
    if (r.ehk !== undefined) {
      w.tag(2, WIRE_VARINT);
      w.varint(r.ehk);
    }
    w.bytesField(3, r.data);
  });
  const end = KPL_MAGIC.length + body;
  out.set(createHash('md5').update(out.subarray(KPL_MAGIC.length, end)).digest(), end);
  return out;
}

/**
 * The 128-bit hash key Kinesis routes a record by: its explicit hash key, else the MD5 of the partition key's
 * UTF-8 bytes read as an unsigned big-endian integer. The KCL drops an aggregated record whose user records
 * do not all fall in the reading shard's hash key range (the KPL re-puts those after a reshard).
 */
export function effectiveHashKey(partitionKey: string, explicitHashKey?: string): bigint {
  if (explicitHashKey !== undefined) return BigInt(explicitHashKey);
  return BigInt(`0x${createHash('md5').update(partitionKey, 'utf8').digest('hex')}`);
}

function startsWithMagic(data: Uint8Array): boolean {
  return data[0] === KPL_MAGIC[0] && data[1] === KPL_MAGIC[1] && data[2] === KPL_MAGIC[2] && data[3] === KPL_MAGIC[3];
}

// ---- protobuf reading ----

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_SGROUP = 3;
const WIRE_EGROUP = 4;
const WIRE_I32 = 5;

/** Why the bytes do not decode; caught in deaggregate, never escapes. */
class Corrupt extends Error {}

/** A cursor over data[pos, end); offsets in messages are from the start of the Kinesis record. */
class Reader {
  constructor(
    readonly data: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}

  /** An unsigned varint of up to 10 bytes; beyond 2^53 precision is lost, which only matters for values that are then out of range anyway. */
  varint(what: string): number {
    const start = this.pos;
    let value = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Corrupt(`truncated varint (${what}) at byte ${start}`);
      const b = this.data[this.pos++]!;
      value += (b & 0x7f) * 2 ** (7 * i);
      if (b < 0x80) return value;
    }
    throw new Corrupt(`varint (${what}) longer than 10 bytes at byte ${start}`);
  }

  /** A field key: field number and wire type. */
  tag(): { field: number; wire: number } {
    const at = this.pos;
    const key = this.varint('field key');
    const field = Math.floor(key / 8);
    if (field === 0 || field > 0x1fffffff) throw new Corrupt(`field number ${field} out of range at byte ${at}`);
    return { field, wire: key % 8 };
  }

  /** The payload of a length-delimited field whose key is at `at`, as a view. */
  bytes(what: string, at: number): Uint8Array {
    const length = this.varint(`${what} length`);
    if (length > this.end - this.pos) {
      throw new Corrupt(`${what} at byte ${at} claims ${length} bytes but only ${this.end - this.pos} remain`);
    }
    const v = this.data.subarray(this.pos, this.pos + length);
    this.pos += length;
    return v;
  }

  /** A nested message's bytes, as a Reader over the same buffer (offsets stay absolute). */
  message(what: string, at: number): Reader {
    const length = this.bytes(what, at).length;
    return new Reader(this.data, this.pos - length, this.pos);
  }

  /** Skips a field this schema does not know, as protobuf does. */
  skip(field: number, wire: number, at: number, depth = 0): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint(`field ${field}`);
        return;
      case WIRE_I64:
        return this.advance(8, field, at);
      case WIRE_I32:
        return this.advance(4, field, at);
      case WIRE_LEN:
        this.bytes(`field ${field}`, at);
        return;
      case WIRE_SGROUP:
        if (depth >= MAX_GROUP_DEPTH) throw new Corrupt(`groups nested deeper than ${MAX_GROUP_DEPTH} at byte ${at}`);
        for (;;) {
          if (this.pos >= this.end) throw new Corrupt(`group (field ${field}) opened at byte ${at} is not closed`);
          const inner = this.pos;
          const t = this.tag();
          if (t.wire === WIRE_EGROUP) {
            if (t.field !== field) throw new Corrupt(`end of group ${t.field} at byte ${inner} closes group ${field}`);
            return;
          }
          this.skip(t.field, t.wire, inner, depth + 1);
        }
      case WIRE_EGROUP:
        throw new Corrupt(`end of group ${field} at byte ${at} without a start`);
      default:
        throw new Corrupt(`unknown wire type ${wire} (field ${field}) at byte ${at}`);
    }
  }

  private advance(n: number, field: number, at: number): void {
    if (n > this.end - this.pos) throw new Corrupt(`truncated fixed-width field ${field} at byte ${at}`);
    this.pos += n;
  }
}

function readAggregatedRecord(r: Reader): Array<{ partitionKey: string; data: Uint8Array; explicitHashKey?: string }> {
  const partitionKeys: string[] = [];
  const explicitHashKeys: string[] = [];
  const raw: Array<{ at: number; pk: number; ehk: number | undefined; data: Uint8Array }> = [];
  while (r.pos < r.end) {
    const at = r.pos;
    const { field, wire } = r.tag();
    // A known field number with an unexpected wire type is an unknown field to protobuf too.
    if (field === 1 && wire === WIRE_LEN) partitionKeys.push(utf8.decode(r.bytes('partition key', at)));
    else if (field === 2 && wire === WIRE_LEN) explicitHashKeys.push(utf8.decode(r.bytes('explicit hash key', at)));
    else if (field === 3 && wire === WIRE_LEN) raw.push(readRecord(r.message(`record ${raw.length}`, at), raw.length, at));
    else r.skip(field, wire, at);
  }
  return raw.map((rec, i) => {
    if (rec.pk >= partitionKeys.length) {
      throw new Corrupt(`record ${i} at byte ${rec.at}: partition key index ${rec.pk} is outside the table of ${partitionKeys.length}`);
    }
    const out: { partitionKey: string; data: Uint8Array; explicitHashKey?: string } = { partitionKey: partitionKeys[rec.pk]!, data: rec.data };
    if (rec.ehk !== undefined) {
      if (rec.ehk >= explicitHashKeys.length) {
        throw new Corrupt(`record ${i} at byte ${rec.at}: explicit hash key index ${rec.ehk} is outside the table of ${explicitHashKeys.length}`);
      }
      out.explicitHashKey = explicitHashKeys[rec.ehk]!;
    }
    return out;
  });
}

function readRecord(r: Reader, index: number, at: number): { at: number; pk: number; ehk: number | undefined; data: Uint8Array } {
  let pk: number | undefined;
  let ehk: number | undefined;
  let data: Uint8Array | undefined;
  while (r.pos < r.end) {
    const fieldAt = r.pos;
    const { field, wire } = r.tag();
    if (field === 1 && wire === WIRE_VARINT) pk = r.varint('partition key index');
    else if (field === 2 && wire === WIRE_VARINT) ehk = r.varint('explicit hash key index');
    else if (field === 3 && wire === WIRE_LEN) data = r.bytes('data', fieldAt);
    else r.skip(field, wire, fieldAt); // tags (4) included: nothing downstream reads them
  }
  if (pk === undefined) throw new Corrupt(`record ${index} at byte ${at}: required partition_key_index is missing`);
  if (data === undefined) throw new Corrupt(`record ${index} at byte ${at}: required data is missing`);
  return { at, pk, ehk, data };
}

// ---- protobuf writing ----

function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** Size of a length-delimited field with a one-byte key (field numbers < 16). */
function fieldSize(length: number): number {
  return 1 + varintSize(length) + length;
}

class Writer {
  constructor(
    private readonly out: Uint8Array,
    private pos: number,
  ) {}

  varint(v: number): void {
    while (v >= 0x80) {
      this.out[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.out[this.pos++] = v;
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  bytesField(field: number, b: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(b.length);
    this.out.set(b, this.pos);
    this.pos += b.length;
  }
}
