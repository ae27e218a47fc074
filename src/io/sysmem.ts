/**
 * How much memory this process may still use: the machine's free memory (MemAvailable on Linux),
 * capped by the cgroup's limit minus its usage when the process runs in a container, plus V8's
 * heap limit. Used to refuse a setting before it runs out of memory.
 */
import { readFileSync } from "node:fs";
import { freemem } from "node:os";
import { getHeapStatistics } from "node:v8";

function readNumber(path: string): number | null {
  try {
    const text = readFileSync(path, "utf8").trim();
    const v = Number(text);
    return text !== "max" && Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** Bytes the cgroup (v2, else v1) still allows, or null when there is no limit. */
function cgroupRoom(): number | null {
  const v2 = readNumber("/sys/fs/cgroup/memory.max");
  if (v2 !== null) return Math.max(0, v2 - (readNumber("/sys/fs/cgroup/memory.current") ?? 0));
  const v1 = readNumber("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  // v1 reports a huge number (about 2^63) when unlimited.
  if (v1 !== null && v1 < 2 ** 60)
    return Math.max(0, v1 - (readNumber("/sys/fs/cgroup/memory/memory.usage_in_bytes") ?? 0));
  return null;
}

/** Free memory for this process, in bytes. */
export function availableMemory(): number {
  const room = cgroupRoom();
  return room === null ? freemem() : Math.min(freemem(), room);
}

/** V8's heap limit, in bytes. */
export function jsHeapLimit(): number {
  return getHeapStatistics().heap_size_limit;
}
