// A collector on a LocalLog in its own process, for the durability test (which SIGKILLs it):
// node --import tsx test/collector/collector-child.ts <log dir> <write key>; prints {"port":N} when listening.
import { createCollector } from '../../src/collector/collector.ts';
import { LocalLog } from '../../src/source/local-log.ts';

const [dir, key] = process.argv.slice(2);
const log = await LocalLog.open(dir!);
const collector = createCollector({ log, writeKeys: [key!] });
const { port } = await collector.listen(0);
process.stdout.write(JSON.stringify({ port }) + '\n');
