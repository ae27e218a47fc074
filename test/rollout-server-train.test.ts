/**
 * `sat train` with its rollouts through `sat serve` (backend.rollout_url), through the real CLI:
 * - every new version of a trained agent is published under its versioned name and loaded by the
 *   server, and the run ends with the same checkpoints and stage records, byte for byte, as the
 *   same run sampled in-process (sat serve honours the run's uniforms);
 * - a server that dies, hangs, answers garbage, NaN log-probs, ids out of range or another model
 *   version in the middle of a stage stops the run with one line and exit code 1, the stage is not
 *   recorded, and `sat train --resume` with a working server continues from the last checkpoint to
 *   the same end as an uninterrupted run.
 * The server runs in this process behind a proxy that injects the faults on a fixed port (the run
 * directory keeps the URL, so a resumed run finds the server again).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import {
  fingerprint as fingerprintOf,
  fixtureAgent as fixture,
  runSat,
  satJs,
  sets,
  withoutTiming,
} from "./sat-process.js";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEngine } from "../src/engine/engine.js";
import { loadModel } from "../src/model/checkpoint.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { readJsonl } from "../src/io/jsonl.js";
import { listCheckpoints, RUN_FILES } from "../src/io/rundir.js";
import { startServer, type RunningServer } from "../src/backend/serve/server.js";

const tmp = mkdtempSync(join(tmpdir(), "sat-rollout-server-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
const tok = new CharTokenizer();
const engine = await createEngine({ threads: 1 });
const publish = join(tmp, "publish");
mkdirSync(publish);

const STAGES = 2;

const TRAIN = [
  ...["train", "-q", "--threads", "1", "--seed", "1", "--max-steps", String(STAGES)],
  ...sets({
    "team.n_agents": 2,
    "team.agent_checkpoints": [fixture, fixture],
    "tasks.difficulty": 2,
    "rollout.max_prompt_length": 16,
    "rollout.max_completion_length": 40,
    "rollout.prompts_per_step": 4,
    "rollout.n": 4,
    "algo.ppo_mini_batch_size": 2,
    "algo.kl_radius": 0.3,
    "run.save_steps": 1,
    "eval.n_prompts": 8,
    "eval.n": 1,
    "eval.k": [1],
  }),
];

const sat = (argv: string[]) => runSat(argv, { cwd: tmp });

// ---------------------------------------------------------------------------------------------
// sat serve, and a proxy in front of it that can misbehave.

const served: RunningServer = await startServer({
  engine,
  tok,
  models: new Map([
    ["agent-0@v0", loadModel(fixture, engine, tok)],
    ["agent-1@v0", loadModel(fixture, engine, tok)],
  ]),
  loadRoot: publish,
});

type Fault = "none" | "die" | "hang" | "garbage" | "nan" | "badid" | "version";

interface Proxy {
  fault: Fault;
  /** The fault starts with this completion request (counted from 0) once `armed()` holds. */
  after: number;
  armed: () => boolean;
  seen: number;
  server: Server;
}

let port = 0;

async function startProxy(): Promise<Proxy> {
  const proxy: Proxy = {
    fault: "none",
    after: 0,
    armed: () => false,
    seen: 0,
    server: null as unknown as Server,
  };
  proxy.server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", async () => {
      const completion = req.url === "/v1/completions";
      const faulty = completion && proxy.fault !== "none" && proxy.armed() && proxy.seen++ >= proxy.after;
      if (faulty && proxy.fault === "die") {
        req.socket.destroy();
        proxy.server.close();
        proxy.server.closeAllConnections();
        return;
      }
      if (faulty && proxy.fault === "hang") return;
      if (faulty && proxy.fault === "garbage") {
        res.writeHead(200, { "content-type": "text/html" });
        res.end("<html>502 Bad Gateway</html>");
        return;
      }
      const r = await fetch(served.url + req.url, {
        method: req.method,
        body: req.method === "POST" ? body : undefined,
      });
      let text = await r.text();
      if (faulty) {
        const j = JSON.parse(text);
        if (proxy.fault === "badid") j.choices[0].token_ids[0] = 999;
        if (proxy.fault === "version") j.model = j.model.replace(/@v\d+$/, "@v99");
        text = JSON.stringify(j);
        if (proxy.fault === "nan") text = text.replace(/"token_logprobs":\[[^,\]]+/, '"token_logprobs":[NaN');
      }
      res.writeHead(r.status, { "content-type": "application/json" });
      res.end(text);
    });
  });
  await new Promise<void>((r) => proxy.server.listen(port, "127.0.0.1", r));
  port = (proxy.server.address() as AddressInfo).port;
  return proxy;
}

const stopProxy = (p: Proxy) =>
  new Promise<void>((r) => {
    p.server.close(() => r());
    p.server.closeAllConnections();
  });

let proxy = await startProxy();
after(async () => {
  await stopProxy(proxy);
  await served.close();
  await engine.close();
});

const url = () => `http://127.0.0.1:${port}`;
const SERVER = () =>
  sets({
    "backend.rollout_url": url(),
    "backend.rollout_api": "sat",
    "backend.rollout_publish_dir": publish,
    "backend.rollout_timeout_s": 2,
    "backend.rollout_retries": 1,
    "backend.rollout_backoff_s": 0.05,
  });

// ---------------------------------------------------------------------------------------------
// What a finished run must hold.

/** Rollout flags (server agents, uniforms honoured) differ between the local and the served runs. */
const fingerprint = (dir: string) => fingerprintOf(dir, /^rollout\//);

const stageRows = (dir: string) =>
  existsSync(join(dir, RUN_FILES.stages)) ? readJsonl(join(dir, RUN_FILES.stages)).length : 0;

let reference: ReturnType<typeof fingerprint> | null = null;

test("rollout server: sat train through sat serve publishes every new version and ends with the same checkpoints and records as in-process sampling", async () => {
  const local = join(tmp, "local");
  const r0 = await sat([...TRAIN, "--output-dir", local]);
  assert.equal(r0.code, 0, r0.stderr);
  const remote = join(tmp, "remote");
  const before = served.completions;
  const r1 = await sat([...TRAIN, ...SERVER(), "--output-dir", remote]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.ok(served.completions > before, "the server answered no completion");
  reference = fingerprint(local);
  const fp = fingerprint(remote);
  assert.deepEqual(fp.checkpoints, reference.checkpoints, "checkpoints differ from the in-process run");
  assert.deepEqual(fp.stages, reference.stages, "stages.jsonl differs");
  assert.deepEqual(fp.evals, reference.evals, "eval.jsonl differs");
  const rows = readJsonl(join(remote, RUN_FILES.stages)) as Record<string, unknown>[];
  assert.deepEqual(rows[0]["rollout/server_agents"], [0, 1]);
  assert.equal(rows[0]["rollout/uniforms_honoured"], 1);
  assert.equal(readJsonl(join(local, RUN_FILES.stages))[0]["rollout/server_agents" as never], undefined);
  // Accepted updates were published under new versions, and the server holds the newest ones.
  const state = JSON.parse(
    readFileSync(join(listCheckpoints(remote).at(-1)!.dir, "trainer_state.json"), "utf8"),
  ) as { versions: number[] };
  assert.ok(
    state.versions.some((v) => v > 0),
    `no update accepted: ${JSON.stringify(state)}`,
  );
  state.versions.forEach((v, a) => {
    if (v > 0)
      assert.ok(
        existsSync(join(publish, `agent-${a}@v${v}`, "model.safetensors")),
        `agent-${a}@v${v} not published`,
      );
  });
  for (const name of served.names()) assert.match(name, /^agent-[01]@v\d+$/);
});

test("rollout server: a server that dies, hangs or answers garbage, NaN, bad ids or another version mid-stage stops sat train with one line; the stage is not recorded; --resume continues to the same end", async () => {
  assert.ok(reference, "needs the previous test's reference run");
  const expected: Record<Exclude<Fault, "none">, RegExp> = {
    die: /cannot reach the server \((ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET)\)/,
    hang: /no answer within 2 s \(backend\.rollout_timeout_s\) \(after 2 attempts\)$/,
    garbage: /the reply is not JSON/,
    nan: /NaN or Infinity/,
    badid: /token 0 is 999, not an id in \[0, 64\)/,
    version: /answered with model agent-[01]@v99, not agent-[01]@v\d+: .*stale/,
  };
  for (const fault of Object.keys(expected) as Exclude<Fault, "none">[]) {
    const dir = join(tmp, `fault-${fault}`);
    proxy.fault = fault;
    proxy.seen = 0;
    proxy.after = 3; // a few requests into stage 2
    proxy.armed = () => listCheckpoints(dir).length > 0;
    const r = await sat([...TRAIN, ...SERVER(), "--output-dir", dir]);
    assert.equal(r.code, 1, `${fault}: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `${fault}: ${r.stderr}`);
    assert.ok(
      lines[0].startsWith(`sat: rollout server ${url()}: POST /v1/completions (agent `),
      `${fault}: ${lines[0]}`,
    );
    assert.match(lines[0], expected[fault], fault);
    assert.equal(stageRows(dir), 1, `${fault}: the failed stage was recorded`);
    assert.deepEqual(
      listCheckpoints(dir).map((c) => c.step),
      [1],
    );
    // A working server again (on the same port), and the run continues from stage 1.
    if (fault === "die") proxy = await startProxy();
    if (fault === "hang") {
      await stopProxy(proxy);
      proxy = await startProxy();
    }
    proxy.fault = "none";
    const resumed = await sat(["train", "--resume", "--output-dir", dir, "-q"]);
    assert.equal(resumed.code, 0, `${fault} resume: ${resumed.stderr}`);
    const fp = fingerprint(dir);
    assert.deepEqual(fp.checkpoints, reference!.checkpoints, `${fault}: checkpoints after resume`);
    assert.deepEqual(fp.stages, reference!.stages, `${fault}: stages.jsonl after resume`);
  }
});

test("rollout server: sat train with a server but no publish dir is refused before it starts (the server's weights would go stale)", async () => {
  const dir = join(tmp, "no-publish");
  const r = await sat([
    ...TRAIN,
    ...sets({ "backend.rollout_url": url(), "backend.rollout_api": "sat" }),
    "--output-dir",
    dir,
  ]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr.trim(),
    /^sat: sat train updates the agents, so a rollout server must load each new version: set backend\.rollout_publish_dir/,
  );
  assert.equal(r.stderr.trim().split("\n").length, 1);
  assert.equal(existsSync(join(dir, RUN_FILES.stages)), false);
});

test("rollout server: sat eval of a checkpoint through sat serve --checkpoint (fixed weights at the checkpoint's versions) equals the in-process evaluation", async () => {
  const run = join(tmp, "remote");
  const ckpt = listCheckpoints(run).at(-1)!.dir;
  const port2 = await new Promise<number>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [satJs, "serve", "--checkpoint", ckpt, "--port", "0", "--set", "run.threads=1"],
      {
        cwd: tmp,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    after(() => child.kill("SIGKILL"));
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+), serving (.*)/.exec(out);
      if (m) {
        assert.match(m[2], /^agent-0@v\d+, agent-1@v\d+$/);
        resolve(Number(m[1]));
      }
    });
    child.on("close", (code) => reject(new Error(`sat serve exited (${code}) before listening: ${out}`)));
  });
  const evalArgs = (dir: string) => [
    "eval",
    "-q",
    "--checkpoint",
    ckpt,
    "--output-dir",
    dir,
    "--threads",
    "1",
    ...TRAIN.slice(TRAIN.indexOf("--set")),
  ];
  const local = await sat(evalArgs(join(tmp, "eval-local")));
  assert.equal(local.code, 0, local.stderr);
  const remote = await sat([
    ...evalArgs(join(tmp, "eval-remote")),
    ...sets({ "backend.rollout_url": `http://127.0.0.1:${port2}`, "backend.rollout_api": "sat" }),
  ]);
  assert.equal(remote.code, 0, remote.stderr);
  const rows = (d: string) => withoutTiming(readJsonl(join(tmp, d, RUN_FILES.eval)));
  assert.deepEqual(rows("eval-remote"), rows("eval-local"));
});
