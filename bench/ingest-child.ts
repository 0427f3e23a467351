/** Child process of the ingest benchmark: ingests one file and prints its figures as JSON (peak RSS, CPU and phases included). */
import { Ingestor } from '../src/ingest/ingestor.ts';
import { openLocalLake } from '../src/lake.ts';
import type { RecordBatch, Source } from '../src/source/source.ts';
import { FileSource } from '../src/source/file-source.ts';

const [input, lake, target, mode] = process.argv.slice(2) as [string, string, string, string | undefined];
const { storage, catalog } = openLocalLake(lake);
const t0 = process.hrtime.bigint();
const cpu0 = process.cpuUsage();
const since = () => Number(process.hrtime.bigint() - t0) / 1e9;
// The moment the source is exhausted splits the run into its read/decode phase and the final writes
// (with 1 GiB targets nothing reaches its size: a day's files are written once the input passes the
// day's end by closeAfterMs, in arrival order the first days during the input, the rest after it).
let inputDoneSeconds = 0;
const files = new FileSource([input]);
const timed: Source = {
  name: files.name,
  progress: () => files.progress(),
  recycle: (bytes) => files.recycle(bytes),
  async *[Symbol.asyncIterator](): AsyncIterator<RecordBatch> {
    yield* files;
    inputDoneSeconds = since();
  },
};
const stats = await new Ingestor(storage, catalog, { targetFileBytes: Number(target), rawCopy: mode === 'raw-copy' }).run(timed);
const rawBytes = (await storage.list('_raw', { recursive: true })).reduce((a, o) => a + o.size, 0);
const seconds = since();
const cpu = process.cpuUsage(cpu0);
const usage = process.resourceUsage();
process.stdout.write(
  JSON.stringify({ ...stats, rawBytes, seconds, inputDoneSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, systemSeconds: cpu.system / 1e6, minorFaults: usage.minorPageFault, maxRssBytes: usage.maxRSS * 1024 }) + '\n',
);
