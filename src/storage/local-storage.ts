import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ConfigError, StorageError } from '../errors.ts';
import { checkRange, type ObjectInfo, type Storage } from './storage.ts';

/**
 * The name of a write in progress (tempBeside): not an object yet, so never listed. A process killed
 * mid-write leaves one behind, and listing it made, for example, a dead Kinesis consumer's half-written
 * heartbeat count as a live consumer for ever.
 */
const IN_PROGRESS = /^\..+\.\d+\.[0-9a-f]{8}\.tmp$/;

/**
 * Storage in a local directory. Atomic writes go to a hidden temporary name in the target
 * directory, are fsynced, then renamed over the final name (rename is atomic on POSIX).
 */
export class LocalStorage implements Storage {
  readonly root: string;

  constructor(root: string) {
    if (typeof root !== 'string' || root.length === 0) throw new ConfigError(`lake directory: ${JSON.stringify(root)} is not a path`);
    this.root = path.resolve(root);
  }

  /** The absolute path of `key`; refuses keys that would leave the root. */
  private pathOf(key: string): string {
    const p = path.resolve(this.root, key);
    if (p !== this.root && !p.startsWith(this.root + path.sep)) {
      throw new StorageError(`key ${JSON.stringify(key)} resolves outside the lake root ${this.root}`);
    }
    return p;
  }

  localPath(key: string): string {
    return this.pathOf(key);
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const target = this.pathOf(key);
    const tmp = await this.tempBeside(target);
    try {
      const fh = await fsp.open(tmp, 'w');
      try {
        await fh.writeFile(body);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, target);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw new StorageError(`cannot write ${target}: ${(err as Error).message}`, { cause: err });
    }
  }

  async putFile(key: string, localPath: string): Promise<void> {
    const target = this.pathOf(key);
    await fsp.mkdir(path.dirname(target), { recursive: true });
    try {
      const fh = await fsp.open(localPath, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(localPath, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') {
        throw new StorageError(`cannot move ${localPath} to ${target}: ${(err as Error).message}`, { cause: err });
      }
      // Another filesystem: copy to a hidden name beside the target, then rename.
      const tmp = await this.tempBeside(target);
      await fsp.copyFile(localPath, tmp);
      const fh = await fsp.open(tmp, 'r+');
      await fh.sync();
      await fh.close();
      await fsp.rename(tmp, target);
      await fsp.rm(localPath, { force: true });
    }
  }

  async putIfAbsent(key: string, body: Uint8Array | string): Promise<boolean> {
    const target = this.pathOf(key);
    const tmp = await this.tempBeside(target);
    await fsp.writeFile(tmp, body);
    try {
      // link() fails with EEXIST when the name exists: an atomic exclusive create of a complete file.
      await fsp.link(tmp, target);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw new StorageError(`cannot create ${target}: ${(err as Error).message}`, { cause: err });
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    const from = this.pathOf(fromKey);
    const to = this.pathOf(toKey);
    await fsp.mkdir(path.dirname(to), { recursive: true });
    try {
      await fsp.link(from, to); // data files are immutable: sharing the inode is a copy
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        await fsp.rm(to, { force: true });
        return this.copy(fromKey, toKey);
      }
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw new StorageError(`cannot copy ${from} to ${to}: ${(err as Error).message}`, { cause: err });
      const tmp = await this.tempBeside(to);
      await fsp.copyFile(from, tmp);
      await fsp.rename(tmp, to);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await fsp.readFile(this.pathOf(key));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EISDIR') return undefined;
      throw new StorageError(`cannot read ${key}: ${(err as Error).message}`, { cause: err });
    }
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer | undefined> {
    checkRange(offset, length);
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(this.pathOf(key), 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EISDIR') return undefined;
      throw new StorageError(`cannot read ${key}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const size = (await handle.stat()).size;
      const n = Math.max(0, Math.min(length, size - offset));
      const out = Buffer.alloc(n);
      let got = 0;
      while (got < n) {
        const { bytesRead } = await handle.read(out, got, n - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === n ? out : out.subarray(0, got);
    } catch (err) {
      throw new StorageError(`cannot read ${key}: ${(err as Error).message}`, { cause: err });
    } finally {
      await handle.close();
    }
  }

  async list(prefix: string, options: { recursive?: boolean } = {}): Promise<ObjectInfo[]> {
    const dir = this.pathOf(prefix);
    const out: ObjectInfo[] = [];
    const walk = async (abs: string): Promise<void> => {
      let entries;
      try {
        entries = await fsp.readdir(abs, { withFileTypes: true });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return;
        throw new StorageError(`cannot list ${abs}: ${(err as Error).message}`, { cause: err });
      }
      for (const e of entries) {
        const p = path.join(abs, e.name);
        if (e.isDirectory()) {
          if (options.recursive) await walk(p);
        } else if (e.isFile() && !IN_PROGRESS.test(e.name)) {
          try {
            const st = await fsp.stat(p);
            out.push({ key: path.relative(this.root, p).split(path.sep).join('/'), size: st.size, mtimeMs: st.mtimeMs, etag: `${st.size}-${st.mtimeMs}` });
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // deleted while listing
          }
        }
      }
    };
    await walk(dir);
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return out;
  }

  async delete(keys: string[]): Promise<void> {
    for (const key of keys) await fsp.rm(this.pathOf(key), { force: true });
  }

  private async tempBeside(target: string): Promise<string> {
    const dir = path.dirname(target);
    await fsp.mkdir(dir, { recursive: true });
    return path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`); // see IN_PROGRESS
  }
}
