import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { WriterError } from '../errors.ts';
import type { SpoolSegment } from './spool.ts';

/**
 * Per-row sort keys of a spool, kept in a file beside it so memory stays bounded whatever the spool
 * size: 16 bytes a row (receivedAt ms as a float64, then the row's event id and its line length as
 * uint32), in the spool's row order, native byte order (the file never leaves the process).
 */
export const INDEX_ENTRY_BYTES = 16;

/** The k-th of a family of files named after `path`: `path` itself, then `<path without .ndjson>.<k>.ndjson`. */
export function numberedPath(path: string, k: number): string {
  return k === 0 ? path : path.replace(/(\.ndjson)?$/, `.${k}$1`);
}

/** One sort of a spool into the order its Parquet file wants. */
export interface SpoolSortJob {
  /** The spool's segment files (spool.ts), in the order the spool made them (as `segmentOf` indexes them); some may be empty. */
  segments: SpoolSegment[];
  /** Its index (INDEX_ENTRY_BYTES per row, arrival order across all segments). */
  indexPath: string;
  /** Per event id, the segment holding that event's rows (empty: every row is in the first segment). */
  segmentOf: number[];
  /** Where the sorted copies go: this path, then `<path without .ndjson>.<k>.ndjson` for further pieces. */
  outPath: string;
  /** Rows the spool holds. */
  rows: number;
  /** Event names by event id (the index's ids); empty when rows are ordered by receivedAt only. */
  events: string[];
  /** Most spool bytes held in memory at once; a larger spool is sorted in runs, then merged. */
  memoryBytes: number;
}

/** What a sort did. */
export interface SpoolSortResult {
  /** The files to read, one after the other, for the rows in the file's order: segments already in order, and sorted copies of the rest. */
  files: string[];
  /** The sorted copies among `files` (to remove once read). */
  copies: string[];
  /** Sorted runs written before the merge (0: the copied bytes fit in memory and were sorted in one pass). */
  runs: number;
  /** Bytes copied. */
  bytes: number;
}

/** Bytes written to the output per write call. */
const OUT_CHUNK = 4 * 1024 * 1024;

/**
 * Sorts a spool into the order of its Parquet file (event, then receivedAt, then arrival), so that
 * DuckDB writes it without an ORDER BY. Measured on 200 k tracks rows of ~1.1 KB: DuckDB's sort
 * moved the whole ~1 KB rows and cost 1–2 CPU-s, about half the write; this copy costs ~0.3 s.
 * Segments already in order (one event, receivedAt never decreasing) are not copied: the result
 * lists them between the sorted copies of the others, each event's rows in one place. The copied
 * segments are treated as one file, their concatenation; a concatenation larger than `memoryBytes`
 * is cut into consecutive ranges, each sorted into a run file, and the runs are merged in one
 * sequential pass (the global order is known up front from the index, so the merge needs no heap:
 * each next row names the run it comes from).
 */
export function sortSpool(job: SpoolSortJob, scratch: Scratch = new Scratch()): SpoolSortResult {
  if (job.segments.every((s) => s.inOrder)) return { files: inOrderFiles(job), copies: [], runs: 0, bytes: 0 };
  const out = new PieceWriter(job.outPath);
  try {
    return sortInto(job, scratch, out);
  } catch (err) {
    out.abandon();
    throw err instanceof WriterError ? err : new WriterError(`sorting spool ${job.segments[0]?.path} failed: ${(err as Error).message}`, { cause: err });
  }
}

/** The files of a spool whose segments are all in order: by their event's rank. */
function inOrderFiles(job: SpoolSortJob): string[] {
  return segmentsAsTheyAre(job, eventRanks(job.events)).map((s) => s.path);
}

/** The segments read as they are (in order, not empty), by the rank of the one event each holds (-1 outside tracks). */
function segmentsAsTheyAre(job: SpoolSortJob, rank: Uint32Array): Array<{ path: string; rank: number }> {
  const rankOf = new Map<number, number>();
  job.segmentOf.forEach((k, id) => rankOf.set(k, rank[id]!));
  return job.segments.flatMap((s, k) => (s.inOrder && s.bytes > 0 ? [{ path: s.path, rank: rankOf.get(k) ?? -1 }] : [])).sort((a, b) => a.rank - b.rank);
}

function sortInto(job: SpoolSortJob, scratch: Scratch, out: PieceWriter): SpoolSortResult {
  const n = job.rows;
  const segs = job.segments;
  const index = new ArrayBuffer(n * INDEX_ENTRY_BYTES);
  readFully(new SegmentFile([{ path: job.indexPath, bytes: index.byteLength }]), new Uint8Array(index), 0);
  const f64 = new Float64Array(index);
  const u32 = new Uint32Array(index);
  const byEvent = job.events.length > 0;
  const rank = eventRanks(job.events);
  // The copied segments form one virtual file, their concatenation. Each row's offset in it (or -1
  // for rows of segments read as they are); rows in concatenation order (by segment, then arrival).
  const segOfRow = (i: number) => (byEvent ? job.segmentOf[u32[4 * i + 2]!]! : 0);
  const copied = segs.map((s) => !s.inOrder);
  const base: number[] = [];
  let total = 0;
  segs.forEach((s, k) => {
    base.push(copied[k] ? total : -1);
    if (copied[k]) total += s.bytes;
  });
  const perSeg = new Uint32Array(segs.length + 1);
  for (let i = 0; i < n; i++) perSeg[segOfRow(i) + 1]!++;
  for (let k = 0; k < segs.length; k++) perSeg[k + 1]! += perSeg[k]!;
  const vorder = new Uint32Array(n); // concatenation order: row index at each place
  const fill = perSeg.slice(0, segs.length);
  const start = new Float64Array(n);
  const localOff = new Float64Array(segs.length);
  for (let i = 0; i < n; i++) {
    const k = segOfRow(i);
    vorder[fill[k]!++] = i;
    start[i] = copied[k] ? base[k]! + localOff[k]! : -1;
    localOff[k]! += u32[4 * i + 3]!;
  }
  segs.forEach((s, k) => {
    if (localOff[k] !== s.bytes) throw new WriterError(`${s.path} holds ${s.bytes} bytes, its index rows ${localOff[k]}`);
  });
  // The event id slot is overwritten with the event's rank, in place: a multi-GB spool has millions
  // of rows, and each array beside the index would cost several bytes a row more.
  for (let i = 0; i < n; i++) u32[4 * i + 2] = byEvent ? rank[u32[4 * i + 2]!]! : 0;
  // The copied rows, in the file's order; ties keep arrival order (a stable sort of rows listed in
  // concatenation order, and an event's rows are all in one segment, in arrival order).
  let m = 0;
  for (let v = 0; v < n; v++) if (start[vorder[v]!]! >= 0) m++;
  const order = new Uint32Array(m);
  m = 0;
  for (let v = 0; v < n; v++) if (start[vorder[v]!]! >= 0) order[m++] = vorder[v]!;
  order.sort((a, b) => u32[4 * a + 2]! - u32[4 * b + 2]! || f64[2 * a]! - f64[2 * b]!);
  const len = (i: number) => u32[4 * i + 3]!;

  // Where the sorted rows are cut so that the segments read as they are fall between them, by rank.
  const asIs = segmentsAsTheyAre(job, rank);
  const cuts: number[] = []; // before order[cuts[j]] the j-th segment read as it is goes
  for (let k = 0, p = 0; p < asIs.length; p++) {
    while (k < m && u32[4 * order[k]! + 2]! < asIs[p]!.rank) k++;
    cuts.push(k);
  }
  let nextCut = 0;
  const atPlace = (k: number) => {
    while (nextCut < cuts.length && cuts[nextCut] === k) out.insert(asIs[nextCut++]!.path);
  };
  const file = new SegmentFile(segs.filter((_, k) => copied[k]));
  let runs = 0;
  if (total <= job.memoryBytes) {
    const all = scratch.get(total);
    readFully(file, all, 0);
    for (let k = 0; k < m; k++) {
      atPlace(k);
      const i = order[k]!;
      out.write(all, start[i]!, start[i]! + len(i));
    }
  } else {
    runs = sortInRuns(job, file, vorder, order, start, len, out, scratch, atPlace);
  }
  atPlace(m);
  out.close();
  return { files: out.files, copies: out.pieces, runs, bytes: total };
}

/** Event ranks by event id, ordered as DuckDB orders VARCHAR: by the UTF-8 bytes. */
function eventRanks(events: string[]): Uint32Array {
  const byBytes = events.map((e, id) => ({ id, bytes: Buffer.from(e, 'utf8') })).sort((a, b) => Buffer.compare(a.bytes, b.bytes));
  const rank = new Uint32Array(events.length);
  byBytes.forEach((e, r) => (rank[e.id] = r));
  return rank;
}

/**
 * The external path: the copied rows, in concatenation order, cut into consecutive ranges of at
 * most `memoryBytes / 2`, each sorted into a run file, then merged.
 */
function sortInRuns(
  job: SpoolSortJob,
  file: SegmentFile,
  vorder: Uint32Array,
  order: Uint32Array,
  start: Float64Array,
  len: (i: number) => number,
  out: PieceWriter,
  scratch: Scratch,
  atPlace: (k: number) => void,
): number {
  const n = job.rows;
  const m = order.length;
  // Ranges of consecutive copied rows; half the budget each, the other half for the merge's read buffers.
  const segBytes = Math.max(1, Math.floor(job.memoryBytes / 2));
  const runOf = new Uint32Array(n);
  const runStart: number[] = []; // byte offset in the concatenation where each run begins
  for (let v = 0; v < n; v++) {
    const i = vorder[v]!;
    if (start[i]! < 0) continue;
    if (runStart.length === 0 || start[i]! + len(i) - runStart.at(-1)! > segBytes) runStart.push(start[i]!);
    runOf[i] = runStart.length - 1;
  }
  const runs = runStart.length;
  runStart.push(file.bytes);
  // Each run's rows in global order: a stable distribution of the global order by run.
  const runCount = new Uint32Array(runs + 1);
  for (let k = 0; k < m; k++) runCount[runOf[order[k]!]! + 1]!++;
  for (let r = 0; r < runs; r++) runCount[r + 1]! += runCount[r]!;
  const byRun = new Uint32Array(m);
  const fill = runCount.slice(0, runs);
  for (let k = 0; k < m; k++) {
    const i = order[k]!;
    byRun[fill[runOf[i]!]!++] = i;
  }
  const runPaths = Array.from({ length: runs }, (_, r) => `${job.outPath}.run${r}`);
  try {
    for (let r = 0; r < runs; r++) {
      const a = runStart[r]!;
      const bytes = runStart[r + 1]! - a;
      const seg = scratch.get(bytes);
      readFully(file, seg, a);
      const run = new OutputFile(runPaths[r]!);
      for (let k = runCount[r]!; k < runCount[r + 1]!; k++) {
        const i = byRun[k]!;
        run.write(seg, start[i]! - a, start[i]! - a + len(i));
      }
      run.close();
    }
    const readers = runPaths.map((p) => new RunReader(p, Math.max(64 * 1024, Math.floor(job.memoryBytes / 2 / runs))));
    try {
      for (let k = 0; k < m; k++) {
        atPlace(k);
        const i = order[k]!;
        readers[runOf[i]!]!.copyTo(out, len(i));
      }
    } finally {
      for (const r of readers) r.close();
    }
    return runs;
  } finally {
    for (const p of runPaths) rmSync(p, { force: true });
  }
}

/**
 * A read buffer kept from one sort to the next. Fresh memory is expensive where the kernel or the
 * hypervisor backs pages lazily (measured on this project's 2-core VM: ~3 ms per MB first touched,
 * ~0.04 ms per MB already touched), so a sorter that runs many times keeps one.
 */
export class Scratch {
  private buf = Buffer.allocUnsafeSlow(0);

  /** A buffer of exactly `bytes` bytes (a view of the kept one, grown when too small). */
  get(bytes: number): Buffer {
    if (this.buf.length < bytes) this.buf = Buffer.allocUnsafeSlow(bytes);
    return this.buf.subarray(0, bytes);
  }
}

/** Files read as one: the concatenation of `parts`, each of the given size. */
class SegmentFile {
  readonly bytes: number;
  constructor(readonly parts: ReadonlyArray<{ path: string; bytes: number }>) {
    this.bytes = parts.reduce((a, p) => a + p.bytes, 0);
  }
}

/** Reads `into.length` bytes of `file` from `position`; a short part is an error naming it. */
function readFully(file: SegmentFile, into: Uint8Array, position: number): void {
  let got = 0;
  let partStart = 0;
  for (const part of file.parts) {
    if (got === into.length) return;
    const partEnd = partStart + part.bytes;
    const at = position + got;
    if (at < partEnd) {
      const fd = openSync(part.path, 'r');
      try {
        const want = Math.min(into.length - got, partEnd - at);
        let done = 0;
        while (done < want) {
          const r = readSync(fd, into, got + done, want - done, at - partStart + done);
          if (r === 0) throw new WriterError(`${part.path} ended after ${at - partStart + done} bytes, expected ${part.bytes}`);
          done += r;
        }
        got += want;
      } finally {
        closeSync(fd);
      }
    }
    partStart = partEnd;
  }
  if (got < into.length) throw new WriterError(`${file.parts.map((p) => p.path).join(', ')} hold ${file.bytes} bytes, read past the end at ${position + got}`);
}

/**
 * The sorted copies of one sort, in read order with the files read as they are: writes go to the
 * current piece (opened on the first write), and a file inserted between rows ends it.
 */
class PieceWriter {
  /** Every file to read, in order. */
  readonly files: string[] = [];
  /** The pieces written. */
  readonly pieces: string[] = [];
  private current: OutputFile | null = null;

  constructor(private readonly outPath: string) {}

  /** Appends `src[from, to)` to the current piece. */
  write(src: Buffer, from: number, to: number): void {
    if (this.current === null) {
      const k = this.pieces.length;
      const p = numberedPath(this.outPath, k);
      this.pieces.push(p);
      this.files.push(p);
      this.current = new OutputFile(p);
    }
    this.current.write(src, from, to);
  }

  /** Puts a file read as it is next in the read order. */
  insert(path: string): void {
    this.close();
    this.files.push(path);
  }

  /** Ends the current piece. */
  close(): void {
    this.current?.close();
    this.current = null;
  }

  /** Removes every piece (after a failure). */
  abandon(): void {
    this.current?.abandon();
    this.current = null;
    for (const p of this.pieces) rmSync(p, { force: true });
  }
}

/** A write-only file fed through a 4 MiB buffer. */
class OutputFile {
  private readonly fd: number;
  private readonly buf = Buffer.allocUnsafeSlow(OUT_CHUNK);
  private used = 0;

  constructor(private readonly path: string) {
    this.fd = openSync(path, 'w');
  }

  /** Appends `src[from, to)`. */
  write(src: Buffer, from: number, to: number): void {
    while (from < to) {
      if (this.used === this.buf.length) this.flush();
      const n = Math.min(to - from, this.buf.length - this.used);
      src.copy(this.buf, this.used, from, from + n);
      this.used += n;
      from += n;
    }
  }

  flush(): void {
    let off = 0;
    while (off < this.used) off += writeSync(this.fd, this.buf, off, this.used - off);
    this.used = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }

  /** Closes and removes the file (after a failure). */
  abandon(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    rmSync(this.path, { force: true });
  }
}

/** Sequential reader of a run file through a buffer. */
class RunReader {
  private readonly fd: number;
  private readonly buf: Buffer;
  private pos = 0;
  private end = 0;
  private fileOffset = 0;

  constructor(private readonly path: string, bufferBytes: number) {
    this.fd = openSync(path, 'r');
    this.buf = Buffer.allocUnsafeSlow(bufferBytes);
  }

  /** Copies the next `bytes` bytes of the run to `out`. */
  copyTo(out: { write(src: Buffer, from: number, to: number): void }, bytes: number): void {
    while (bytes > 0) {
      if (this.pos === this.end) {
        this.end = readSync(this.fd, this.buf, 0, this.buf.length, this.fileOffset);
        if (this.end === 0) throw new WriterError(`run file ${this.path} ended early at ${this.fileOffset} bytes`);
        this.fileOffset += this.end;
        this.pos = 0;
      }
      const n = Math.min(bytes, this.end - this.pos);
      out.write(this.buf, this.pos, this.pos + n);
      this.pos += n;
      bytes -= n;
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}
