import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";

test("same seed gives the same stream; state restores exactly", () => {
  const a = new Rng(42);
  const b = new Rng(42);
  for (let i = 0; i < 100; i++) assert.equal(a.nextU32(), b.nextU32());
  a.normal();
  const st = a.getState();
  const x = [a.normal(), a.uniform(), a.int(10)];
  a.setState(JSON.parse(JSON.stringify(st)));
  assert.deepEqual([a.normal(), a.uniform(), a.int(10)], x);
});

test("forks depend on the name and seed only", () => {
  const r = new Rng(7);
  r.uniform();
  const f1 = r.fork("rollout").nextU32();
  assert.equal(new Rng(7).fork("rollout").nextU32(), f1);
  assert.notEqual(new Rng(7).fork("order").nextU32(), f1);
});

test("uniform moments and categorical frequencies", () => {
  const r = new Rng(1);
  let s = 0;
  let s2 = 0;
  const n = 200000;
  for (let i = 0; i < n; i++) {
    const u = r.uniform();
    assert.ok(u >= 0 && u < 1);
    s += u;
    s2 += u * u;
  }
  assert.ok(Math.abs(s / n - 0.5) < 0.005);
  assert.ok(Math.abs(s2 / n - 1 / 3) < 0.005);
  const counts = [0, 0, 0];
  for (let i = 0; i < 30000; i++) counts[r.categorical([1, 2, 0, 7].slice(0, 3))]++;
  assert.equal(counts[2], 0);
  assert.ok(Math.abs(counts[1] / counts[0] - 2) < 0.15);
});

test("normal has unit variance", () => {
  const r = new Rng(3);
  let s = 0;
  let s2 = 0;
  const n = 100000;
  for (let i = 0; i < n; i++) {
    const z = r.normal();
    s += z;
    s2 += z * z;
  }
  assert.ok(Math.abs(s / n) < 0.02);
  assert.ok(Math.abs(s2 / n - 1) < 0.02);
});
