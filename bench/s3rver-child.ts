/** Child process of the S3 benchmark: runs s3rver (its own event loop, as a real server has) until stdin closes. */
import { startS3rver } from '../test/support/s3rver.ts';

const server = await startS3rver(process.argv[2]);
process.stdout.write(JSON.stringify({ endpoint: server.endpoint }) + '\n');
process.stdin.resume();
process.stdin.on('end', () => void server.close().then(() => process.exit(0)));
