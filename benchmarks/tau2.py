"""tau2-bench (airline and retail train tasks) on the fleet: pass^1 small-only vs cascade, side by side.

    .venv/bin/python benchmarks/tau2.py --domain retail --limit 10

Needs the stack (`slmflow up`) or starts a one-off fleet; the frontier endpoint (or its labelled
stand-in) plays the customer. CI runs a 2-task subset (tests/integration/test_tau2_live.py);
this script runs as many tasks as you give it time for. Results: one JSON line per episode on
stdout, then the table.
"""

from __future__ import annotations

import argparse
import json

from evals.adapters import default_data_dir
from evals.tau2.episode import run_episode
from evals.tau2.scoring import pass_hat_k
from evals.tau2.tasks import load_tasks
from flows.ledger import Ledger
from flows.ratelimit import ensure_frontier_rate_limit
from slmflow.cli.stack import ensure_frontier_standin, ensure_prefect_server
from slmflow.core.settings import get_settings
from workers.fleet import frontier_endpoint, get_fleet
from workers.remote import RayWorkers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", choices=["retail", "airline"], default="retail")
    parser.add_argument("--limit", type=int, default=None, help="first N train tasks (default: all)")
    parser.add_argument("--max-turns", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=4, help="tool calls per agent turn")
    args = parser.parse_args()

    settings = get_settings()
    ensure_prefect_server(settings)
    ensure_frontier_standin(settings)
    ensure_frontier_rate_limit(settings.frontier_rpm)
    data = default_data_dir() / "tau2"
    tasks = load_tasks(args.domain, data)[: args.limit]
    workers = RayWorkers(get_fleet(settings))
    ledger = Ledger(settings, frontier_endpoint(settings)[1])
    rows = {}
    for mode in ("small", "cascade"):
        passed, steps, escalated, usd = {}, 0, 0, 0.0
        for task in tasks:
            e = run_episode(task, data, workers, ledger, mode, args.max_turns, args.max_steps)
            print(json.dumps(e.model_dump(mode="json")), flush=True)
            passed[e.task_id] = [e.score.passed]
            steps, escalated, usd = steps + e.steps, escalated + e.escalated_steps, usd + e.usd
        rows[mode] = (pass_hat_k(passed, 1), steps, escalated, usd)
    print(f"\ntau2 {args.domain}, {len(tasks)} tasks, frontier: {frontier_endpoint(settings)[2]}")
    print(f"{'mode':8} {'pass^1':>7} {'steps':>6} {'escalated':>10} {'cost $':>9}")
    for mode, (p, s, e, u) in rows.items():
        print(f"{mode:8} {p:7.3f} {s:6d} {e:10d} {u:9.5f}")


if __name__ == "__main__":
    main()
