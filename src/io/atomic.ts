/**
 * Crash-safe file writes: write to a temporary file in the same directory, fsync it, rename it over
 * the target, then fsync the directory so the rename itself is durable. A reader therefore sees the
 * old file or the new one, never a torn one. Directories are published the same way (build under a
 * temporary name, fsync every file, rename).
 */
import {
  closeSync,
  fsyncSync,
  openSync,
  renameSync,
  writeSync,
  rmSync,
  readdirSync,
  statSync,
} from "node:fs";
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
