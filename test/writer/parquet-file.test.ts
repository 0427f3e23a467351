import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parquetWriteMemory, rowGroupRows, rowGroupRowsOfParquet } from '../../src/writer/parquet-file.ts';

test('row groups hold ~64 MiB of spool: DuckDB’s 122,880 rows for narrow events, fewer for wide ones, never under 2,048', () => {
  assert.equal(rowGroupRows(1_000_000, 200 * 1_000_000), 122_880); // 200-byte aliases
  assert.equal(rowGroupRows(200_000, 220_000_000), Math.floor((64 * 1024 * 1024) / 1100)); // 1.1 KB tracks: 61,008
  assert.equal(rowGroupRows(10_000, 10_000 * 32 * 1024), 2_048); // 32 KB events, Segment's largest
  assert.equal(rowGroupRows(0, 0), 122_880);
  // The write's memory estimate follows the row group: three copies of one, at most.
  assert.equal(parquetWriteMemory(0, 0), 0);
  assert.equal(parquetWriteMemory(100, 110_000), 3 * 110_000); // a spool smaller than one row group
  const wide = parquetWriteMemory(200_000, 220_000_000);
  assert.ok(wide <= 3 * 64 * 1024 * 1024 && wide > 2.9 * 64 * 1024 * 1024, String(wide));
});

test('rewriting Parquet (compact merge) cuts the row groups ingest cuts: ~50 MiB of column data, within the same bounds', () => {
  // Ingest's 1.1 KB tracks: 62,696 rows made 53,257,352 uncompressed bytes (measured on a written file).
  const rows = rowGroupRowsOfParquet(200_000, Math.round((200_000 * 53_257_352) / 62_696));
  assert.ok(rows > 58_000 && rows < 64_000, String(rows));
  assert.equal(rowGroupRowsOfParquet(1_000_000, 150 * 1_000_000), 122_880); // narrow rows
  assert.equal(rowGroupRowsOfParquet(1_000, 1_000 * 64 * 1024), 2_048);
  assert.equal(rowGroupRowsOfParquet(0, 0), 122_880);
});
