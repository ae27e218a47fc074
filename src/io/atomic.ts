/**
 * Crash-safe file writes: write to a temporary file in the same directory, fsync it, rename it over
 * the target, then fsync the directory so the rename itself is durable. A reader therefore sees the
 * old file or the new one, never a torn one. Directories are published the same way (build under a
 * temporary name, fsync every file, rename).
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  writeSync,
  rmSync,
  readdirSync,
  statSync,
} from "node:fs";
import { createHash } from "node:crypto";
import { dirname, basename, join } from "node:path";

let counter = 0;

export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${counter++}`);
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `data` (or the byte chunks in order) to `target` atomically. */
export function writeFileAtomic(target: string, data: string | Uint8Array | Uint8Array[]): void {
  const tmp = tempPathFor(target);
  const fd = openSync(tmp, "w");
  try {
    const chunks = Array.isArray(data) ? data : [typeof data === "string" ? Buffer.from(data) : data];
    for (const chunk of chunks) {
      let off = 0;
      while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
    }
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    // writeSync's errors carry no path: name the file the user asked for.
    if (err && typeof err === "object" && !("path" in err)) (err as NodeJS.ErrnoException).path = target;
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dirname(target));
}

/** fsyncs every regular file below `dir` and the directories themselves (before publishing it). */
export function fsyncTree(dir: string): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) fsyncTree(p);
    else {
      const fd = openSync(p, "r");
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
  }
  fsyncDir(dir);
}

/**
 * mkdir -p that reports the real cause. Node's recursive mkdir says ENOENT when the file system is
 * read-only (or a parent is not writable); this retries the first missing component alone, which
 * fails with the true code (EROFS, EACCES, ENOTDIR), naming that path.
 */
export function makeDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    let first = dir;
    while (!existsSync(dirname(first)) && dirname(first) !== first) first = dirname(first);
    mkdirSync(first); // throws the real error
    throw err;
  }
}

/** SHA-256 of a file, hex, read in 1 MiB chunks. */
export function sha256File(path: string): string {
  const hash = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

/**
 * Publishes directory `final` atomically: `build` fills a temp dir beside it, every file is
 * fsynced, and the temp dir is renamed over `final` (an existing `final` is moved aside first and
 * removed after). A crash leaves either the old directory or the new one, plus a temp dir that
 * `LEFTOVER`-aware cleanup removes.
 */
export async function publishDir(final: string, build: (dir: string) => void | Promise<void>): Promise<void> {
  const parent = dirname(final);
  makeDir(parent);
  const tmp = tempPathFor(final);
  mkdirSync(tmp);
  try {
    await build(tmp);
    fsyncTree(tmp);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  if (existsSync(final)) {
    const old = join(parent, `.${basename(final)}.del-${process.pid}-${counter++}`);
    renameSync(final, old);
    renameSync(tmp, final);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmp, final);
  }
  fsyncDir(parent);
}
