import { createHash } from 'node:crypto';
import type { DeleteObjectsCommand, DeleteObjectsCommandInput } from '@aws-sdk/client-s3';

/** What a build-step middleware sees: the serialized request, before signing. */
interface BuildArgs {
  input: DeleteObjectsCommandInput;
  request: unknown;
}

const NAME = 'tributaryContentMd5';

/**
 * Makes one DeleteObjects command carry `Content-MD5` instead of the SDK's flexible checksum
 * (`x-amz-checksum-crc32` with `x-amz-sdk-checksum-algorithm`). S3 documents Content-MD5 as the
 * integrity header of Multi-Object Delete and accepts it; S3-compatible services that predate flexible
 * checksums (OpenStack Swift's s3api among them) answer 400 "Missing required header for this request:
 * Content-MD5" without it. It runs right after the SDK's checksum middleware, before signing.
 */
export function withContentMd5(command: DeleteObjectsCommand): DeleteObjectsCommand {
  const middleware = <R>(next: (args: BuildArgs) => Promise<R>) => async (args: BuildArgs): Promise<R> => {
    const request = args.request as { headers?: Record<string, string>; body?: unknown };
    const body = request.body;
    if (request.headers === undefined || !(typeof body === 'string' || body instanceof Uint8Array)) return next(args);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      const lower = name.toLowerCase();
      if (lower.startsWith('x-amz-checksum-') || lower === 'x-amz-sdk-checksum-algorithm' || lower === 'content-md5') continue;
      headers[name] = value;
    }
    headers['content-md5'] = createHash('md5').update(body).digest('base64');
    return next({ ...args, request: { ...request, headers } });
  };
  command.middlewareStack.addRelativeTo(middleware, { relation: 'after', toMiddleware: 'flexibleChecksumsMiddleware', name: NAME });
  return command;
}
