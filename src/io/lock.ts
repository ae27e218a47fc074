/**
 * One writer per run directory: an exclusive lock file, `<dir>/run.lock`, created with O_EXCL and
 * holding the owner's pid, host, start time and command. A second process gets a `RunLockedError`
 * naming the holder. A lock whose process is gone (killed, crashed) is stale: the next process
 * removes it, says so, and takes the run over.
 *
 * Liveness is judged by the pid (kill(pid, 0)) and, on Linux, the process start time from
 * /proc/<pid>/stat, so a recycled pid is not taken for the old owner. It is not judged by a
 * heartbeat: a SAT stage runs synchronously for minutes, and a lock refreshed by a timer (like
 * proper-lockfile's mtime updates) would look stale to a second process during a long stage. A lock
 * held on another host cannot be checked and is never broken automatically.
 *
 * Locks are per process and re-entrant within it (a count), and are released on close or, as a
 * last resort, when the process exits normally.
 */
import { closeSync, fsyncSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";

export const LOCK_FILE = "run.lock";
const BREAK_SUFFIX = ".breaking";

export interface LockOwner {
  pid: number;
  host: string;
  /** ISO time the owning process started. */
  started: string;
  /** Start time of the process in clock ticks since boot (Linux), to tell a recycled pid apart. */
  proc_start: string | null;
  command: string;
}

/** Another live process writes this run directory; exit code 2 (wait, stop it, or pick another dir). */
export class RunLockedError extends Error {
  readonly exitCode = 2;
  constructor(
    message: string,
    readonly owner: LockOwner | null,
  ) {
    super(message);
    this.name = "RunLockedError";
  }
}

/** Field 22 of /proc/<pid>/stat (start time in ticks since boot), or null off Linux or when gone. */
function procStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

const selfStart = new Date(Date.now() - process.uptime() * 1000).toISOString();

function ownerOfThisProcess(command: string): LockOwner {
  return {
    pid: process.pid,
    host: hostname(),
    started: selfStart,
    proc_start: procStart(process.pid),
    command,
  };
}

/** True when the process that wrote `o` still runs (on this host). */
export function ownerAlive(o: LockOwner): boolean {
  try {
    process.kill(o.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false; // ESRCH: no such process
  }
  const now = procStart(o.pid);
  return o.proc_start === null || now === null || now === o.proc_start;
}

function readOwner(path: string): LockOwner | null | "missing" {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return "missing";
  }
  try {
    const o = JSON.parse(text) as LockOwner;
    return Number.isInteger(o?.pid) && typeof o.host === "string" ? o : null;
  } catch {
    return null; // being written right now, or left empty by a crash between create and write
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Creates `path` exclusively with `owner` in it; false when it exists. */
function createExclusive(path: string, owner: LockOwner): boolean {
  let fd: number;
  try {
    fd = openSync(path, "wx");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
  try {
    const buf = Buffer.from(JSON.stringify(owner) + "\n");
    writeSync(fd, buf);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

function describe(o: LockOwner): string {
  const on = o.host !== hostname() ? ` on host ${o.host}` : "";
  return `pid ${o.pid}${on}, started ${o.started.replace("T", " ").replace(/\.\d+Z$/, " UTC")}, ${o.command}`;
}

const held = new Map<string, { owner: LockOwner; count: number }>();
let exitHookInstalled = false;

function releaseAllOnExit(): void {
  for (const path of held.keys()) removeIfOurs(path);
  held.clear();
}

function removeIfOurs(path: string): void {
  const o = readOwner(path);
  if (typeof o === "object" && o !== null && o.pid === process.pid && o.started === selfStart)
    rmSync(path, { force: true });
}

export interface RunLock {
  readonly path: string;
  release(): void;
}

/**
 * Takes the lock of run directory `dir` (which must exist) for `command`. Throws RunLockedError
 * when a live process holds it; removes a stale lock (calling `warn`) and takes it.
 */
export function lockRunDir(dir: string, command: string, warn: (m: string) => void = () => {}): RunLock {
  const path = join(dir, LOCK_FILE);
  const mine = held.get(path);
  if (mine) {
    mine.count++;
    return handle(path);
  }
  const owner = ownerOfThisProcess(command);
  for (let attempt = 0; attempt < 50; attempt++) {
    if (createExclusive(path, owner)) {
      held.set(path, { owner, count: 1 });
      if (!exitHookInstalled) {
        process.on("exit", releaseAllOnExit);
        exitHookInstalled = true;
      }
      return handle(path);
    }
    const other = readOwner(path);
    if (other === "missing") continue; // released between our create and read: try again
    if (other === null) {
      // Empty or half-written: its writer is between create and write, or died there.
      if (attempt < 10) {
        sleepMs(20);
        continue;
      }
      breakStale(path, null, warn, `an unreadable lock file ${path}`);
      continue;
    }
    if (other.host !== hostname()) {
      throw new RunLockedError(
        `${dir} is locked by sat on another host (${describe(other)}); if that run is over, delete ${path}`,
        other,
      );
    }
    if (ownerAlive(other)) {
      throw new RunLockedError(
        `${dir} is in use by another sat process (${describe(other)}); wait for it to finish or stop it, or choose another --output-dir`,
        other,
      );
    }
    breakStale(path, other, warn, `the lock of a sat process that is gone (${describe(other)})`);
  }
  throw new RunLockedError(`${dir}: could not take ${path} (it keeps changing); try again`, null);
}

/**
 * Removes a stale lock. Two processes may find the same stale lock: a guard file created with
 * O_EXCL lets one of them remove it, after checking it is still the lock judged stale.
 */
function breakStale(path: string, stale: LockOwner | null, warn: (m: string) => void, what: string): void {
  const guard = path + BREAK_SUFFIX;
  const me = ownerOfThisProcess("breaking a stale lock");
  if (!createExclusive(guard, me)) {
    const g = readOwner(guard);
    if (typeof g === "object" && g !== null && !ownerAlive(g)) rmSync(guard, { force: true });
    else sleepMs(20);
    return;
  }
  try {
    const now = readOwner(path);
    const same =
      now !== "missing" &&
      (stale === null
        ? now === null
        : now !== null && now.pid === stale.pid && now.started === stale.started);
    if (same) {
      rmSync(path, { force: true });
      warn(`removed ${what}; taking over the run`);
    }
  } finally {
    rmSync(guard, { force: true });
  }
}

function handle(path: string): RunLock {
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      const h = held.get(path);
      if (!h) return;
      if (--h.count > 0) return;
      held.delete(path);
      removeIfOurs(path);
    },
  };
}

/** The holder of `dir`'s lock when a live process holds it, else null. */
export function lockHolder(dir: string): LockOwner | null {
  const o = readOwner(join(dir, LOCK_FILE));
  return typeof o === "object" && o !== null && ownerAlive(o) ? o : null;
}
