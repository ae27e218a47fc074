#!/usr/bin/env python3
"""Table of the SAT core v2 comparison (experiments/README.md): held-out avg@1, null-update and
full-step rates, and how often β fell, from experiments/results/core-v2/{before,after}*.json(l)."""
import json, statistics as st, os
R = os.path.join(os.path.dirname(__file__), "..", "experiments", "results", "core-v2")
rows = []
for label, name in [("before", "before"), ("after", "after")]:
    res = json.load(open(f"{R}/{name}.json"))
    accs = []
    for run in res["runs"]:
        seed = run["seed"]
        m = run["eval"][0]["metrics"]
        stages = [json.loads(l) for l in open(f"{R}/{name}-s{seed}-stages.jsonl")]
        ag = [a for s in stages for a in s["agents"]]
        nulls = sum(1 for a in ag if a["trust_region/accepted"] == 0) / len(ag)
        full = sum(1 for a in ag if a["trust_region/backtracks"] == 0 and a["trust_region/accepted"] == 1) / len(ag)
        betas, fell = {}, 0
        for s in stages:
            for a in s["agents"]:
                b, i = a["actor/kl_coef"], a["agent"]
                if i in betas and b < betas[i]:
                    fell += 1
                betas[i] = b
        accs.append(m["avg@1"])
        rows.append((label, seed, m["avg@1"], m["avg@1/ci_low"], m["avg@1/ci_high"], nulls, full, fell,
                     [round(betas[i], 3) for i in sorted(betas)]))
    print(f"{label}: mean avg@1 over seeds {st.mean(accs):.3f} (sd {st.stdev(accs):.3f})")
print("| build | seed | held-out avg@1 [95% CI] | null updates | full step accepted | stages where β fell | β after 30 stages |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print("| %s | %d | %.3f [%.3f, %.3f] | %.1f%% | %.1f%% | %d | %s |" % (r[0], r[1], r[2], r[3], r[4], 100 * r[5], 100 * r[6], r[7], r[8]))
