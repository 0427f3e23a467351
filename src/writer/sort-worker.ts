import { parentPort } from 'node:worker_threads';
import { Scratch, sortSpool, type SpoolSortJob } from './spool-sort.ts';

/** Worker thread body: sorts spools posted by SpoolSorter, one at a time, keeping its read buffer between them. */
const scratch = new Scratch();
parentPort!.on('message', (msg: { job: SpoolSortJob }) => {
  try {
    parentPort!.postMessage({ result: sortSpool(msg.job, scratch) });
  } catch (err) {
    parentPort!.postMessage({ error: (err as Error).message });
  }
});
