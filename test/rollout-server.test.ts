/**
 * Rollouts through an OpenAI-compatible server, against `sat serve` on a loopback port and against
 * a scripted server that misbehaves on purpose:
 * - parity: relay and independent rollouts through `sat serve` (which honours the uniforms sent in
 *   its extension field) equal the in-process rollouts token for token, log-probs within 1e-6;
 * - determinism: with a seed, `sat serve` answers the same request with the same tokens, and a
 *   rollout in the vLLM dialect (seeds only, no uniforms) is repeatable;
 * - every bad reply (dead or hanging server, malformed JSON, NaN, ids out of range, another model
 *   version, a missing model) fails the turn with one line naming the server, the request and the
 *   problem; failures that may pass are retried with backoff;
 * - the request and reply shapes of vLLM, SGLang and llama.cpp as documented.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { Rng } from "../src/engine/rng.js";
import { createEngine } from "../src/engine/engine.js";
import { loadModel } from "../src/model/checkpoint.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import type { Transformer } from "../src/model/transformer.js";
import { getTask, makeProblems } from "../src/tasks/index.js";
import { rolloutTeam, type RolloutOptions } from "../src/team/rollout.js";
import { ModelMember } from "../src/team/member.js";
import type { TeamMember, TurnRequest } from "../src/contracts/member.js";
import { startServer } from "../src/backend/serve/server.js";
import { ServerClient } from "../src/backend/openai/client.js";
import { RemoteMember } from "../src/backend/openai/remote-member.js";
import { checkReply, readReply, turnRequest, type RolloutApi } from "../src/backend/openai/dialects.js";
import { validateConfig } from "../src/config/load.js";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const fixture = join(repo, "test", "fixtures", "agents", "add2-tiny");
const tok = new CharTokenizer();
const task = getTask("add");
const engine = await createEngine({ threads: 1 });
after(() => engine.close());

/** Two agents: the fixture, and the fixture with <eot> made likely (so turns end by sampling too). */
function agents(): Transformer[] {
  const a = loadModel(fixture, engine, tok);
  const b = loadModel(fixture, engine, tok);
  const w = b.w(b.lmHeadName());
  const C = b.cfg.dModel;
  for (let c = 0; c < C; c++) w[tok.eot * C + c] *= 8;
  return [a, b];
}

const name = (a: number, v: number) => `agent-${a}@v${v}`;

function client(url: string, over: Partial<ConstructorParameters<typeof ServerClient>[0]> = {}) {
  return new ServerClient({
    url,
    timeoutSeconds: 30,
    retries: 0,
    backoffSeconds: 0.01,
    concurrency: 8,
    ...over,
  });
}

function remote(c: ServerClient, api: RolloutApi, models: Transformer[]): RemoteMember[] {
  return models.map(
    (m, a) =>
      new RemoteMember({
        client: c,
        api,
        agent: a,
        vocabSize: m.cfg.vocabSize,
        maxSeqLen: m.cfg.maxSeqLen,
        modelName: (v) => name(a, v),
      }),
  );
}

const RELAY: RolloutOptions = {
  protocol: "relay",
  rounds: 2,
  maxTurnTokens: 6,
  maxCompletionLength: 30,
  maxPromptLength: 16,
  temperature: 0.8,
  topP: 0.9,
};

async function rollout(team: TeamMember[], opts: RolloutOptions, seed: number) {
  const problems = makeProblems(task, { split: "train", n: 4, seed: 7, difficulty: 2 });
  return rolloutTeam(team, tok, problems, 3, opts, task.verify, new Rng(seed));
}

test("rollout server: relay and independent rollouts through sat serve equal the in-process rollouts token for token, log-probs within 1e-6", async () => {
  const models = agents();
  const server = await startServer({ engine, tok, models: new Map(models.map((m, a) => [name(a, 0), m])) });
  try {
    for (const opts of [RELAY, { ...RELAY, protocol: "independent" as const, temperature: 1, topP: 1 }]) {
      const local = await rollout(
        models.map((m) => new ModelMember(m)),
        opts,
        11,
      );
      const served = await rollout(remote(client(server.url), "sat", models), opts, 11);
      assert.equal(served.length, local.length);
      let maxDiff = 0;
      let tokens = 0;
      served.forEach((s, i) => {
        const l = local[i];
        assert.deepEqual(Array.from(s.tokens), Array.from(l.tokens), `${opts.protocol} episode ${i}: tokens`);
        assert.deepEqual(Array.from(s.owner), Array.from(l.owner), `${opts.protocol} episode ${i}: owners`);
        assert.deepEqual(Array.from(s.ownerVersion), Array.from(l.ownerVersion));
        assert.equal(s.reward, l.reward);
        for (let t = 0; t < s.tokens.length; t++) {
          maxDiff = Math.max(maxDiff, Math.abs(s.behaviourLogp[t] - l.behaviourLogp[t]));
          if (s.owner[t] >= 0) tokens++;
        }
      });
      assert.ok(tokens > 100, `${opts.protocol}: only ${tokens} sampled tokens compared`);
      assert.ok(maxDiff <= 1e-6, `${opts.protocol}: max |Δ logp| = ${maxDiff}`);
    }
    assert.ok(server.completions > 0);
  } finally {
    await server.close();
  }
});

test("sat serve: the same request with a seed gives the same tokens, another seed other tokens; bad requests get 400/404 with a message", async () => {
  const [m] = agents();
  const server = await startServer({ engine, tok, models: new Map([[name(0, 0), m]]) });
  const post = async (body: unknown) => {
    const r = await fetch(`${server.url}/v1/completions`, { method: "POST", body: JSON.stringify(body) });
    return { status: r.status, json: (await r.json()) as Record<string, any> };
  };
  try {
    const prompt = [tok.bos, ...tok.encode("12+34=")];
    const req = { model: name(0, 0), prompt, max_tokens: 12, seed: 3, logprobs: 0, return_token_ids: true };
    const a = await post(req);
    const b = await post(req);
    assert.equal(a.status, 200);
    assert.deepEqual(a.json.choices[0].token_ids, b.json.choices[0].token_ids);
    assert.deepEqual(a.json.choices[0].logprobs.token_logprobs, b.json.choices[0].logprobs.token_logprobs);
    const seeds = await Promise.all([4, 5, 6, 7].map((seed) => post({ ...req, seed })));
    const distinct = new Set([a, ...seeds].map((r) => JSON.stringify(r.json.choices[0].token_ids)));
    assert.ok(distinct.size > 1, "five seeds gave the same completion");
    const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
    assert.deepEqual(
      models.data.map((d) => d.id),
      [name(0, 0)],
    );
    const bad: [unknown, number, RegExp][] = [
      [{ ...req, model: name(0, 1) }, 404, /model agent-0@v1 is not served \(serving: agent-0@v0\)/],
      [{ ...req, prompt: "12+34=" }, 400, /prompt.*token ids/],
      [{ ...req, prompt: [1, 999] }, 400, /token ids in \[0, 64\)/],
      [{ ...req, max_tokens: 100 }, 400, /exceeds the context of 56/],
      [{ ...req, top_p: 0 }, 400, /top_p/],
      [{ ...req, sat_uniforms: [0.5] }, 400, /sat_uniforms/],
    ];
    for (const [body, status, msg] of bad) {
      const r = await post(body);
      assert.equal(r.status, status, JSON.stringify(r.json));
      assert.match(r.json.error.message, msg);
    }
  } finally {
    await server.close();
  }
});

test("rollout server: in the vLLM dialect (seeds, not uniforms) a rollout through sat serve is valid and repeatable", async () => {
  const models = agents();
  const server = await startServer({ engine, tok, models: new Map(models.map((m, a) => [name(a, 0), m])) });
  try {
    const first = await rollout(remote(client(server.url), "vllm", models), RELAY, 5);
    const again = await rollout(remote(client(server.url), "vllm", models), RELAY, 5);
    assert.deepEqual(
      first.map((t) => Array.from(t.tokens)),
      again.map((t) => Array.from(t.tokens)),
    );
    const members = remote(client(server.url), "vllm", models);
    assert.equal(members[0].honoursUniforms, false);
    assert.equal(remote(client(server.url), "sat", models)[0].honoursUniforms, true);
  } finally {
    await server.close();
  }
});

// ---------------------------------------------------------------------------------------------
// A scripted server: each completion request gets the reply `script` returns for it.

type Reply = { status?: number; text?: string; json?: unknown; hang?: boolean };
const opened: Server[] = [];
after(() => Promise.all(opened.map((s) => close(s))));

async function scripted(
  script: (n: number, body: any) => Reply,
): Promise<{ url: string; server: Server; calls: () => number }> {
  let calls = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let data = "";
    req.on("data", (c) => (data += c));
    req.on("end", () => {
      const r = script(calls++, JSON.parse(data || "{}"));
      if (r.hang) return; // never answers
      res.writeHead(r.status ?? 200, { "content-type": "application/json" });
      res.end(r.text ?? JSON.stringify(r.json));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  opened.push(server);
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, server, calls: () => calls };
}

const close = (s: Server) =>
  new Promise<void>((r) => {
    s.close(() => r());
    s.closeAllConnections();
  });

/** A valid reply in the OpenAI completions shape. */
function completion(model: string, ids: unknown[], logps: unknown[], finish = "length") {
  return {
    id: "cmpl-1",
    object: "text_completion",
    model,
    choices: [
      { index: 0, text: "", token_ids: ids, logprobs: { token_logprobs: logps }, finish_reason: finish },
    ],
  };
}

function turn(maxTokens = 4): TurnRequest {
  return {
    episodes: [0],
    transcripts: [Int32Array.from([tok.bos, ...tok.encode("1+2=")])],
    maxTokens,
    maxLength: Int32Array.from([40]),
    endTurn: [tok.eot],
    endEpisode: [tok.eos],
    temperature: 1,
    topP: 1,
    uniforms: new Float64Array(maxTokens).fill(0.5),
  };
}

function member(
  url: string,
  over: Partial<ConstructorParameters<typeof ServerClient>[0]> = {},
  api: RolloutApi = "vllm",
) {
  return new RemoteMember({
    client: client(url, over),
    api,
    agent: 0,
    vocabSize: tok.vocabSize,
    maxSeqLen: 56,
    modelName: (v) => name(0, v),
  });
}

async function turnError(m: RemoteMember): Promise<string> {
  try {
    await m.openSession(1, 40).writeTurn(turn());
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail("the turn succeeded");
}

test("rollout server: every bad reply fails the turn with one line naming the server, the request and the problem", async () => {
  const ok = completion(name(0, 0), [5, 6], [-0.1, -0.2]);
  const cases: [string, Reply, RegExp][] = [
    ["malformed JSON", { text: '{"choices": [' }, /the reply is not JSON/],
    [
      "NaN written by a Python server",
      { text: JSON.stringify(ok).replace("-0.1", "NaN") },
      /NaN or Infinity/,
    ],
    [
      "a null log-prob (NaN as orjson writes it)",
      { json: completion(name(0, 0), [5, 6], [null, -0.2]) },
      /log-prob 0 \(token 5\) is null, not a finite number ≤ 0/,
    ],
    [
      "a positive log-prob",
      { json: completion(name(0, 0), [5, 6], [0.5, -0.2]) },
      /log-prob 0 \(token 5\) is 0\.5/,
    ],
    [
      "an id out of range",
      { json: completion(name(0, 0), [5, 999], [-0.1, -0.2]) },
      /token 1 is 999, not an id in \[0, 64\)/,
    ],
    ["a non-integer id", { json: completion(name(0, 0), [5.5], [-0.1]) }, /token 0 is 5\.5/],
    ["counts that differ", { json: completion(name(0, 0), [5, 6], [-0.1]) }, /2 token ids but 1 log-probs/],
    [
      "too many tokens",
      { json: completion(name(0, 0), [5, 6, 7, 8, 9], [-1, -1, -1, -1, -1]) },
      /wrote 5 tokens, more than max_tokens = 4/,
    ],
    [
      "another model version",
      { json: completion(name(0, 3), [5], [-0.1]) },
      /answered with model agent-0@v3, not agent-0@v0: .*stale/,
    ],
    ["no model named", { json: { ...ok, model: undefined } }, /names no model/],
    [
      "no token ids",
      { json: { ...ok, choices: [{ ...ok.choices[0], token_ids: undefined }] } },
      /no token_ids/,
    ],
    [
      "two choices",
      { json: { ...ok, choices: [ok.choices[0], ok.choices[0]] } },
      /exactly one choice, it has 2/,
    ],
    [
      "a stop at a token that is not a stop id",
      { json: completion(name(0, 0), [5], [-0.1], "stop") },
      /stopped after 1 tokens at token 5, which is not a stop id/,
    ],
    [
      "a model the server does not have",
      { status: 404, json: { error: { message: "The model `agent-0@v0` does not exist." } } },
      /HTTP 404: The model `agent-0@v0` does not exist\./,
    ],
  ];
  for (const [what, reply, msg] of cases) {
    const s = await scripted(() => reply);
    try {
      const line = await turnError(member(s.url, { retries: 2 }));
      assert.ok(
        line.startsWith(
          `rollout server ${s.url}: POST /v1/completions (agent 0, episode 0, model agent-0@v0): `,
        ),
        `${what}: ${line}`,
      );
      assert.match(line, msg, what);
      assert.ok(!line.includes("\n"), `${what}: more than one line`);
      assert.equal(s.calls(), 1, `${what}: a bad reply is not retried`);
    } finally {
      await close(s.server);
    }
  }
});

test("rollout server: a server that hangs times out, one that fails for a while is retried with backoff, a dead one is reported", async () => {
  // Hangs: every attempt times out.
  const hang = await scripted(() => ({ hang: true }));
  let t0 = performance.now();
  const line = await turnError(member(hang.url, { timeoutSeconds: 0.2, retries: 1, backoffSeconds: 0.05 }));
  const seconds = (performance.now() - t0) / 1000;
  assert.match(line, /no answer within 0\.2 s \(backend\.rollout_timeout_s\) \(after 2 attempts\)$/);
  assert.equal(hang.calls(), 2);
  assert.ok(seconds >= 0.45 && seconds < 5, `${seconds} s for two 0.2 s attempts and a 0.05 s wait`);
  await close(hang.server);

  // 503 twice, then a valid reply: the turn succeeds on the third attempt, after waits of 0.05 and 0.1 s.
  const flaky = await scripted((n) =>
    n < 2
      ? { status: 503, json: { error: { message: "overloaded" } } }
      : { json: completion(name(0, 0), [5, tok.eot], [-0.1, -0.3], "stop") },
  );
  t0 = performance.now();
  const out = await member(flaky.url, { retries: 2, backoffSeconds: 0.05 })
    .openSession(1, 40)
    .writeTurn(turn());
  assert.ok(performance.now() - t0 >= 140, "backoff 0.05 s then 0.1 s");
  assert.deepEqual(Array.from(out[0].tokens), [5, tok.eot]);
  assert.deepEqual(Array.from(out[0].logp), [-0.1, -0.3]);
  assert.equal(flaky.calls(), 3);
  await close(flaky.server);

  const always503 = await scripted(() => ({ status: 503, json: { error: { message: "overloaded" } } }));
  assert.match(
    await turnError(member(always503.url, { retries: 1, backoffSeconds: 0.01 })),
    /HTTP 503: overloaded \(after 2 attempts\)$/,
  );
  await close(always503.server);

  // Dead: nothing listens on the port any more.
  const dead = await scripted(() => ({ json: {} }));
  await close(dead.server);
  assert.match(
    await turnError(member(dead.url, { retries: 1, backoffSeconds: 0.01 })),
    /cannot reach the server \(ECONNREFUSED\) \(after 2 attempts\)$/,
  );
});

test("rollout server: vLLM, SGLang and llama.cpp requests carry the documented fields; their replies are read and cut at the turn's stop id", () => {
  const call = {
    model: "agent-1@v2",
    prompt: Int32Array.from([1, 20, 21]),
    maxTokens: 5,
    stop: [3, 2],
    temperature: 0.7,
    topP: 0.9,
    seed: 123,
    uniforms: Float64Array.from([0.1, 0.2, 0.3, 0.4, 0.5]),
  };
  const vllm = turnRequest("vllm", call);
  assert.equal(vllm.path, "/v1/completions");
  assert.deepEqual(vllm.body.prompt, [1, 20, 21]);
  assert.deepEqual(vllm.body.stop_token_ids, [3, 2]);
  for (const [k, v] of Object.entries({
    max_tokens: 5,
    temperature: 0.7,
    top_p: 0.9,
    seed: 123,
    ignore_eos: true,
    include_stop_str_in_output: true,
    return_token_ids: true,
    return_tokens_as_token_ids: true,
    top_k: -1,
    min_p: 0,
    repetition_penalty: 1,
  }))
    assert.equal(vllm.body[k], v, `vllm ${k}`);
  assert.equal(vllm.body.sat_uniforms, undefined);
  const sglang = turnRequest("sglang", call);
  assert.equal(sglang.body.no_stop_trim, true);
  assert.equal(sglang.body.include_stop_str_in_output, undefined);
  assert.deepEqual(turnRequest("sat", call).body.sat_uniforms, [0.1, 0.2, 0.3, 0.4, 0.5]);
  const llama = turnRequest("llamacpp", call);
  assert.equal(llama.path, "/completion");
  for (const [k, v] of Object.entries({
    n_predict: 5,
    temperature: 0.7,
    top_p: 0.9,
    seed: 123,
    top_k: 0,
    min_p: 0,
    n_probs: 1,
    post_sampling_probs: true,
    return_tokens: true,
  }))
    assert.equal(llama.body[k], v, `llama.cpp ${k}`);
  assert.deepEqual(llama.body.samplers, ["temperature", "top_p"]);

  // vLLM without return_token_ids support: ids from the "token_id:N" strings.
  const old = readReply("vllm", {
    model: "agent-1@v2",
    choices: [
      {
        logprobs: { tokens: ["token_id:7", "token_id:3"], token_logprobs: [-0.5, -1.5] },
        finish_reason: "stop",
      },
    ],
  });
  assert.deepEqual(checkReply(old, call, 64), { tokens: [7, 3], logp: [-0.5, -1.5] });

  // llama.cpp writes past a relay's end-of-turn (it knows no stop ids): the reply is cut after it.
  const probs = [0.5, 0.25, 0.9, 1];
  const llamaReply = readReply("llamacpp", {
    model: "agent-1@v2",
    tokens: [7, 3, 9, 9],
    completion_probabilities: [7, 3, 9, 9].map((id, j) => ({ id, prob: probs[j], top_probs: [] })),
    stop_type: "limit",
  });
  const cut = checkReply(llamaReply, { ...call, maxTokens: 4 }, 64);
  assert.deepEqual(cut.tokens, [7, 3]);
  assert.deepEqual(cut.logp, [Math.log(0.5), Math.log(0.25)]);
  assert.throws(
    () =>
      readReply("llamacpp", {
        model: "m",
        tokens: [7, 3],
        completion_probabilities: [
          { id: 7, prob: 0.5 },
          { id: 4, prob: 0.5 },
        ],
      }),
    /completion_probabilities\[1\] is for token 4, tokens\[1\] is 3/,
  );
  // A float32 log-prob rounded just above 0 is 0; the model name is checked for every family.
  const tiny = readReply("sglang", completion("agent-1@v2", [7], [3e-8]));
  assert.deepEqual(checkReply(tiny, call, 64).logp, [0]);
  assert.throws(
    () =>
      checkReply(
        readReply("llamacpp", { model: "agent-1@v1", tokens: [], completion_probabilities: [] }),
        call,
        64,
      ),
    /answered with model agent-1@v1/,
  );
});

test("rollout server: backend.rollout_* keys are checked once, each problem naming its key and the fix", () => {
  const problem = (backend: Record<string, unknown>, team: Record<string, unknown> = {}) => {
    try {
      validateConfig({ backend, team });
    } catch (err) {
      return (err as Error).message;
    }
    return "valid";
  };
  assert.equal(
    problem({ rollout_url: "http://127.0.0.1:8000", rollout_api: "sglang", rollout_agents: [1, 2] }),
    "valid",
  );
  assert.match(
    problem({ rollout_url: "ftp://x" }),
    /backend\.rollout_url "ftp:\/\/x" is not an http\(s\) URL; give e\.g\. http:\/\/127\.0\.0\.1:8000/,
  );
  assert.match(
    problem({ rollout_url: "http://h:1", rollout_model: "agent-{agent}" }),
    /backend\.rollout_model "agent-\{agent\}" has no \{version\}/,
  );
  assert.match(
    problem({ rollout_url: "http://h:1", rollout_model: "base@v{version}" }),
    /has no \{agent\}, so every served agent would ask for the same weights/,
  );
  assert.equal(
    problem({ rollout_url: "http://h:1", rollout_model: "base@v{version}", rollout_agents: [2] }),
    "valid",
  );
  assert.match(
    problem({ rollout_url: "http://h:1", rollout_agents: [3] }),
    /backend\.rollout_agents names agent 3, the team has 3 \(0 to 2\)/,
  );
  assert.match(problem({ rollout_url: "http://h:1", rollout_agents: [1, 1] }), /has duplicates/);
  assert.match(
    problem({ rollout_publish_dir: "pub" }),
    /backend\.rollout_publish_dir is set but backend\.rollout_url is null/,
  );
  assert.match(
    problem({ rollout_url: "http://h:1", rollout_api: "vllm", rollout_publish_dir: "pub" }),
    /only sat serve loads at run time.*set backend\.rollout_api=sat/,
  );
  assert.match(problem({ rollout_api: "ollama" }), /rollout_api/);
});
