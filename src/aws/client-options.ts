import { badOption, ConfigError } from '../errors.ts';

/**
 * Checks the client settings shared by the AWS-backed parts (S3 storage, Glue catalog, Athena):
 * `region` and `endpoint` when given, and that none of `clientSettings` is combined with a
 * ready-made `client` (it would be silently ignored). `service` prefixes option names ("S3 region"),
 * `owner` the clash message ("S3 storage: …").
 */
export function checkClientOptions<O extends { region?: unknown; endpoint?: unknown; client?: unknown }>(
  service: string,
  owner: string,
  options: O,
  clientSettings: ReadonlyArray<keyof O & string> = ['region', 'endpoint'],
): void {
  const { region, endpoint } = options;
  if (region !== undefined && (typeof region !== 'string' || !/^[a-z0-9-]+$/.test(region))) {
    badOption(`${service} region`, region, 'a region name such as us-east-1');
  }
  if (endpoint !== undefined) {
    let ok = false;
    try {
      ok = typeof endpoint === 'string' && ['http:', 'https:'].includes(new URL(endpoint).protocol);
    } catch {
      ok = false;
    }
    if (!ok) badOption(`${service} endpoint`, endpoint, 'an http:// or https:// URL');
  }
  if (options.client !== undefined) {
    const clash = clientSettings.filter((k) => options[k] !== undefined);
    if (clash.length > 0) throw new ConfigError(`${owner}: ${clash.join(', ')} cannot be combined with a ready-made client; configure the client instead`);
  }
}
