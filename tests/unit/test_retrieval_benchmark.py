"""The retrieval benchmark's own logic, without running it: the beam choice, the exact reference,
and the markdown it writes for the docs."""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.retrieval import SWEEP, choose_ef, exact_top_k, header, report, synthesize


def sweep(*recalls: float) -> list[dict[str, float]]:
    return [{"hnsw_ef": ef, "recall@5": r, "p50_ms": 0.1 * ef} for ef, r in zip(SWEEP, recalls)]


def test_the_smallest_beam_reaching_the_target_is_chosen() -> None:
    assert choose_ef(sweep(0.90, 0.94, 0.951, 0.96, 0.97), target=0.95) == 128
    assert choose_ef(sweep(0.96, 0.97, 0.98, 0.98, 0.99), target=0.95) == 32
    # None reaches it: the best one, not the largest.
    assert choose_ef(sweep(0.80, 0.90, 0.93, 0.92, 0.91), target=0.95) == 128


def test_exact_top_k_is_ordered_best_first() -> None:
    rng = np.random.default_rng(1)
    vectors, source = synthesize(rng.normal(size=(20, 8)).astype(np.float32), 200, 0.3, rng)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5) and source[:20].tolist() == list(range(20))
    top = exact_top_k(vectors, vectors[:3])
    scores = vectors[:3] @ vectors.T
    assert top[:, 0].tolist() == [0, 1, 2]  # each vector is its own nearest
    assert all(np.all(np.diff(scores[i, top[i]]) <= 0) for i in range(3))


def test_report_renders_every_table_as_markdown() -> None:
    relevance = [
        {
            "dataset": "PubMedQA dev",
            "runtime": runtime,
            "documents": 500,
            "chunks": 1509,
            "questions": 500,
            "recall@1": 0.984,
            "recall@3": 0.994,
            "recall@5": 0.994,
            "all_gold@5": 0.994,
            "ingest_chunks_per_s": 150.0,
        }
        for runtime in ("onnx", "onnx-int8", "torch")
    ]
    e2e = {
        "queries": 300,
        "recall@5": 0.97,
        **{f"{part}_{p}_ms": 1.0 for part in ("total", "embed", "search", "embed_cpu") for p in ("p50", "p95")},
    }
    search = {"queries": 300, "p50_ms": 0.8, "p95_ms": 1.1, "recall@5": 0.96}
    run = {
        "backend": "edge",
        "size": 100_000,
        "upsert_s": 20.0,
        "index_s": 25.0,
        "points_per_s": 2222.0,
        "hnsw_ef": 128,
        "search": search,
        "filtered": search,
        "reopen_s": 0.2,
        "peak_rss_mib": 900.0,
        "store_rss_mib": 700.0,
        "sweep": sweep(0.9, 0.94, 0.96, 0.97, 0.98),
        "end_to_end": [{"runtime": r, **e2e} for r in ("onnx", "onnx-int8", "torch")],
    }
    results = {
        "date": "2026-12-01",
        "minutes": 12.5,
        "machine": "a CPU, 2 CPUs",
        "command": "benchmarks/retrieval.py",
        "load_before": 1.0,
        "load_after": 2.0,
        "runtimes": ["onnx", "onnx-int8", "torch"],
        "relevance": relevance,
        "throughput": [{"runtime": "onnx", "chunks": 256, "rounds": 3, "mean": 150.0, "min": 140.0, "max": 160.0}],
        "scale": [run],
        "split": {"questions": 553, "tuning": ["q"] * 100, "reported": ["q"] * 300},
        "real_vectors": 2325,
    }
    text = report(results, argparse.Namespace(noise=0.3, seed=0, target_recall=0.95, budget_s=30.0))
    assert "553 questions" in text and "the first 100 tune `hnsw_ef`" in text
    # The command and the machine head the printed report; `make bench` adds its own to the markdown.
    assert "Machine: a CPU, 2 CPUs" in header(results) and "Machine" not in text
    tables = [block for block in text.split("\n\n") if block.startswith("|")]
    assert len(tables) == 5  # relevance, throughput, end to end, store alone, the beam sweep
    for block in tables:
        rows = block.splitlines()
        assert len({row.count("|") for row in rows}) == 1, block  # every row has the header's columns
    assert "| 100,000 | ONNX Runtime | 128 | **1.00** / 1.00 | 1.00 / 1.00 | 1.00 |" in text
    assert "| PubMedQA dev | 500 | 1509 | 500 | ONNX Runtime, int8 | 0.984 |" in text
    assert "| 100,000 | 0.900 @ 3.20 ms |" in text and text.rstrip().endswith("| 128 |")
