import assert from 'node:assert/strict';
import { test } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import { AthenaClient } from '@aws-sdk/client-athena';
import { AthenaQuery } from '../../src/athena/athena-query.ts';
import { checkClientOptions } from '../../src/aws/client-options.ts';
import { ConfigError } from '../../src/errors.ts';
import { S3Storage } from '../../src/storage/s3-storage.ts';

const refused = (fn: () => unknown, message: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof ConfigError && message.test(e.message), String(message));

test('AWS client settings: a bad region or endpoint is named, settings beside a ready-made client are refused', () => {
  refused(() => checkClientOptions('X', 'X thing', { region: 'US East' }), /X region: "US East".*us-east-1/);
  refused(() => checkClientOptions('X', 'X thing', { region: 7 }), /X region: 7/);
  refused(() => checkClientOptions('X', 'X thing', { endpoint: 'ftp://h' }), /X endpoint: "ftp:\/\/h".*http:\/\/ or https:\/\//);
  refused(() => checkClientOptions('X', 'X thing', { endpoint: 'not a url' }), /X endpoint: "not a url"/);
  refused(() => checkClientOptions('X', 'X thing', { client: {}, region: 'eu-west-1', endpoint: 'http://h' }), /^X thing: region, endpoint cannot be combined with a ready-made client/);
  refused(() => checkClientOptions('X', 'X thing', { client: {}, other: 1 }, ['other']), /X thing: other cannot/);
  // Accepted: valid settings, or a client alone.
  checkClientOptions('X', 'X thing', { region: 'eu-west-1', endpoint: 'https://h:1/p' });
  checkClientOptions('X', 'X thing', { client: {}, unrelated: 1 });

  // Each AWS-backed part checks through it, naming itself.
  refused(() => new S3Storage({ bucket: 'b-1', region: 'US' }), /S3 region: "US"/);
  refused(() => new S3Storage({ bucket: 'b-1', endpoint: 'ftp://x' }), /S3 endpoint: "ftp:\/\/x"/);
  refused(() => new S3Storage({ bucket: 'b-1', client: new S3Client({ region: 'us-east-1' }), forcePathStyle: true }), /S3 storage: forcePathStyle cannot be combined/);
  refused(() => new AthenaQuery({ region: 'US' }), /Athena region: "US"/);
  refused(() => new AthenaQuery({ client: new AthenaClient({ region: 'us-east-1' }), endpoint: 'http://h' }), /Athena: endpoint cannot be combined/);
});
