/** Child process of the ingest benchmark: ingests one file and prints its figures as JSON (peak RSS included). */
import { Ingestor } from '../src/ingest/ingestor.ts';
import { openLocalLake } from '../src/lake.ts';
import { FileSource } from '../src/source/file-source.ts';

const [input, lake, target] = process.argv.slice(2) as [string, string, string];
const { storage, catalog } = openLocalLake(lake);
const t0 = process.hrtime.bigint();
const stats = await new Ingestor(storage, catalog, { targetFileBytes: Number(target) }).run(new FileSource([input]));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
process.stdout.write(JSON.stringify({ ...stats, seconds, maxRssBytes: process.resourceUsage().maxRSS * 1024 }) + '\n');
