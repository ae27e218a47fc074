#!/usr/bin/env node
// Loads a `sat report` page in real headless Chromium and checks that every expected figure is there
// with a drawn <svg> inside, as the browser parsed it (not as our renderer wrote it). Needs the Debian
// package `chromium` (a developer tool; CI does not install it).
//
//   node scripts/check-report.mjs <report.html> [--expect id,id,...] [--screenshot out.png] [--chromium path]
//
// Exit code 0 = all figures present, 1 = a figure is missing or empty, 2 = usage or Chromium problem.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const DEFAULT_IDS = [
  "fig-reward",
  "fig-kl",
  "fig-beta",
  "fig-violation",
  "fig-backtracks",
  "fig-certificate",
  "fig-improvement",
];
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
const TIMEOUT_MS = 90_000;

function usage(message) {
  console.error(`check-report: ${message}`);
  console.error(
    "usage: node scripts/check-report.mjs <report.html> [--expect id,id,...] [--screenshot out.png] [--chromium path]",
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { file: null, expect: DEFAULT_IDS, screenshot: null, chromium: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === "--expect") opts.expect = value().split(",").filter(Boolean);
    else if (a === "--screenshot") opts.screenshot = resolve(value());
    else if (a === "--chromium") opts.chromium = value();
    else if (a.startsWith("--")) usage(`unknown flag ${a}`);
    else if (opts.file === null) opts.file = resolve(a);
    else usage(`unexpected argument ${a}`);
  }
  if (opts.file === null) usage("no report file given");
  if (!existsSync(opts.file)) usage(`${opts.file}: no such file`);
  return opts;
}

function findChromium(explicit) {
  const candidates = explicit
    ? [explicit]
    : ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
  const found = candidates.find((p) => existsSync(p));
  if (!found)
    usage(
      `Chromium not found (tried ${candidates.join(", ")}); install it with: apt-get install -y chromium`,
    );
  return found;
}

/** Runs Chromium once with a fresh profile; resolves with its stdout. */
function runChromium(binary, extraArgs, url) {
  const profile = mkdtempSync(join(tmpdir(), "sat-report-chromium-"));
  const args = [...FLAGS, `--user-data-dir=${profile}`, ...extraArgs, url];
  return new Promise((resolveRun, reject) => {
    const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`Chromium did not finish within ${TIMEOUT_MS / 1000} s`));
    }, TIMEOUT_MS);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      rmSync(profile, { recursive: true, force: true });
      if (code !== 0)
        reject(
          new Error(`Chromium exited with code ${code}: ${stderr.trim().split("\n").slice(-3).join(" | ")}`),
        );
      else resolveRun(stdout);
    });
  });
}

/** The serialized <figure id="…"> element of the parsed DOM, or null. */
function figureMarkup(dom, id) {
  const start = dom.search(new RegExp(`<figure\\b[^>]*\\bid="${id}"`));
  if (start < 0) return null;
  const end = dom.indexOf("</figure>", start);
  return end < 0 ? null : dom.slice(start, end);
}

/** Drawn data items (points, lines, bars, rules) in the figure's role-mark groups; axes and legends do not count. */
function countMarks(svg) {
  let n = 0;
  for (const chunk of svg.split('<g class="').slice(1)) {
    if (/^mark-\w+ role-mark/.test(chunk)) n += (chunk.match(/role="graphics-symbol"/g) ?? []).length;
  }
  return n;
}

const opts = parseArgs(process.argv.slice(2));
const binary = findChromium(opts.chromium);
const url = pathToFileURL(opts.file).href;
let dom;
try {
  dom = await runChromium(binary, ["--dump-dom"], url);
  if (opts.screenshot) {
    await runChromium(
      binary,
      [`--screenshot=${opts.screenshot}`, "--window-size=1280,4200", "--hide-scrollbars"],
      url,
    );
  }
} catch (err) {
  console.error(`check-report: ${err.message}`);
  process.exit(2);
}
if (!/<html/i.test(dom)) {
  console.error("check-report: Chromium returned no document");
  process.exit(2);
}

let failures = 0;
for (const id of opts.expect) {
  const fig = figureMarkup(dom, id);
  let problem = null;
  if (fig === null) problem = "figure missing";
  else if (!/<svg\b/.test(fig)) problem = "no <svg> inside";
  else if (countMarks(fig) === 0) problem = "<svg> has no drawn marks";
  if (problem) failures++;
  console.log(
    `${problem ? "FAIL" : "ok  "} ${id}${problem ? `: ${problem}` : ` (${countMarks(fig)} marks)`}`,
  );
}
if (/<script\b/i.test(dom)) {
  failures++;
  console.log("FAIL page contains a <script> element (the report must work without scripts)");
}
if (opts.screenshot) console.log(`screenshot: ${opts.screenshot}`);
console.log(failures === 0 ? `all ${opts.expect.length} figures present` : `${failures} problem(s)`);
process.exit(failures === 0 ? 0 : 1);
