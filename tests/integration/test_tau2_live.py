"""A tau2 subset end to end on the real fleet: the retail domain's tools in the sandbox, the small
model in a Ray actor, the frontier stand-in as the simulated customer, tau2's scoring. The 135M
model passes nothing; the point is that every part runs and the scores come from the real rule."""

import json

import pytest

from evals.tau2.episode import run_episode
from evals.tau2.scoring import pass_hat_k
from evals.tau2.tasks import load_tasks
from flows.ledger import Ledger
from flows.ratelimit import ensure_frontier_rate_limit
from tests.support.data import shared_data
from workers.fleet import frontier_endpoint
from workers.remote import RayWorkers

pytestmark = pytest.mark.slow


def test_tau2_retail_subset_small_and_cascade(prefect_api, fleet, settings):
    data = shared_data("tau2")
    ensure_frontier_rate_limit(settings.frontier_rpm)
    tasks = load_tasks("retail", data)[:2]
    ledger = Ledger(settings, frontier_endpoint(settings)[1])
    report = {}
    for mode in ("small", "cascade"):
        episodes = [run_episode(t, data, RayWorkers(fleet), ledger, mode, max_turns=2, max_steps=2) for t in tasks]
        for e in episodes:
            assert e.score.reasons or e.score.passed  # a failure always says why
            if mode == "small":
                assert e.escalated_steps == 0
        report[mode] = {
            "pass^1": pass_hat_k({e.task_id: [e.score.passed] for e in episodes}, 1),
            "steps": sum(e.steps for e in episodes),
            "escalated_steps": sum(e.escalated_steps for e in episodes),
            "usd": round(sum(e.usd for e in episodes), 6),
        }
    print(json.dumps(report))
