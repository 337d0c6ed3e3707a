"""Retrieval benchmark: grounded-QA recall on real data, then each store backend at scale.

    nice -n 10 .venv/bin/python benchmarks/retrieval.py                  # 10k and 100k chunks
    nice -n 10 .venv/bin/python benchmarks/retrieval.py --sizes 2000    # a quick run

1. Grounded QA. PubMedQA dev (500 questions; each question's gold context is its own abstract,
   among all 500) and the HotpotQA sample (53 questions; 10 paragraphs each, 2 of them gold, all
   pooled in one collection) go through the real `ingest()` into the embedded store; every question
   is then searched. Recall@k: the share of gold documents found among the top-k chunks.
2. Scale. The chunk vectors embedded in step 1 (real all-MiniLM-L6-v2 vectors) fill the first
   points; embedding 100k texts at ~100/s would take too long here, so the rest are copies of real
   vectors with small Gaussian noise, renormalised. Queries are the real question embeddings. Each
   (backend, size) runs in its own process, so peak RSS is its own. Recall@5 is against exact
   brute-force search in numpy. The filtered search keeps 5 of 50 "sources" (10% of the points).

Data is read from ../shared/data (see --data) and never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from slmflow.core.settings import get_settings

REPO = Path(__file__).resolve().parent.parent
if sys.path[0] == str(Path(__file__).resolve().parent):
    sys.path[0] = str(REPO)  # run as a file, this module's folder would shadow the `retrieval` package
SOURCES = 50  # "documents" the scale points belong to; the filtered search keeps FILTERED of them
FILTERED = [f"src{i}" for i in range(5)]
K = 5
UPSERT_BATCH = 256


def peak_rss_mib() -> float:
    """VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a worker would report the
    parent's peak (torch and the embedding model) as its own."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # macOS: bytes


# ---- 1. grounded QA ------------------------------------------------------------------------------


def load_pubmedqa(data: Path) -> tuple[dict[str, str], list[tuple[str, set[str]]]]:
    raw = json.loads((data / "pubmedqa" / "pqal_dev.json").read_text())
    docs = {pmid: " ".join(item["CONTEXTS"]) for pmid, item in raw.items()}
    return docs, [(item["QUESTION"], {pmid}) for pmid, item in raw.items()]


def load_hotpotqa(data: Path) -> tuple[dict[str, str], list[tuple[str, set[str]]]]:
    docs: dict[str, str] = {}
    questions = []
    for file in sorted((data / "hotpotqa_sample").glob("*.json")):
        for item in json.loads(file.read_text()):
            for title, sentences in item["context"]:
                docs.setdefault(title, f"{title}. {''.join(sentences)}")
            questions.append((item["question"], {title for title, _ in item["supporting_facts"]}))
    return docs, questions


def grounded_qa(data: Path, work: Path) -> tuple[list[dict[str, Any]], np.ndarray, list[str], np.ndarray]:
    """Recall rows, plus the real chunk vectors, their texts and the question vectors for step 2."""
    from retrieval.embedder import Embedder
    from retrieval.ingest import ingest
    from retrieval.store import EdgeStore

    class Recording(Embedder):
        def __init__(self) -> None:
            super().__init__()
            self.texts: list[str] = []
            self.vectors: list[list[float]] = []

        def embed(self, texts: list[str]) -> list[list[float]]:
            vectors = super().embed(texts)
            self.texts += texts
            self.vectors += vectors
            return vectors

    embedder = Recording()
    embedder.embed(["warm-up"])  # load the model outside the timings
    embedder.texts.clear()
    embedder.vectors.clear()
    store = EdgeStore(work / "qa-qdrant")
    rows: list[dict[str, Any]] = []
    question_vectors = []
    for name, (docs, questions) in {
        "PubMedQA dev": load_pubmedqa(data),
        "HotpotQA sample": load_hotpotqa(data),
    }.items():
        folder = work / name.replace(" ", "_")
        folder.mkdir()
        with (folder / "corpus.jsonl").open("w") as fh:
            for doc_id, text in docs.items():
                fh.write(json.dumps({"id": doc_id, "text": text}) + "\n")
        collection = name.split()[0].lower()
        start = time.perf_counter()
        report = ingest(folder, collection, store, embedder)
        ingest_s = time.perf_counter() - start
        start = time.perf_counter()
        vectors = Embedder().embed([q for q, _ in questions])  # not recorded: only chunks fill step 2
        query_s = time.perf_counter() - start
        question_vectors += vectors
        recall: dict[int, list[float]] = {k: [] for k in (1, 3, 5)}
        all_gold = []
        for (_, gold), vector in zip(questions, vectors):
            found = [e.doc_id.removeprefix("corpus.jsonl:") for e in store.search(collection, vector, K)]
            for k in recall:
                recall[k].append(len(gold & set(found[:k])) / len(gold))
            all_gold.append(gold <= set(found))
        rows.append(
            {
                "dataset": name,
                "documents": report.documents,
                "chunks": report.chunks,
                "questions": len(questions),
                "ingest_s": ingest_s,
                "chunks_per_s": report.chunks / ingest_s,
                "queries_per_s": len(questions) / query_s,
                "all_gold@5": statistics.mean(all_gold),
                **{f"recall@{k}": statistics.mean(v) for k, v in recall.items()},
            }
        )
    store.close()
    chunk_vectors = np.asarray(embedder.vectors, np.float32)
    return rows, chunk_vectors, embedder.texts, np.asarray(question_vectors, np.float32)


# ---- 2. scale ------------------------------------------------------------------------------------


def synthesize(base: np.ndarray, n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors: the real ones first, then real ones plus noise of norm ~`noise`. Returns the
    vectors and, per vector, the real vector (and so the text) it came from."""
    source = np.concatenate([np.arange(min(n, len(base))), rng.integers(0, len(base), max(0, n - len(base)))])
    vectors = base[source].copy()
    extra = slice(len(base), n)
    vectors[extra] += rng.normal(0, noise / np.sqrt(base.shape[1]), vectors[extra].shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, source


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    scores = queries @ vectors.T
    if mask is not None:
        scores[:, ~mask] = -np.inf
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1), 1)


def run_worker(backend: str, npz: Path, texts_file: Path, budget_s: float, hnsw_ef: int | None) -> dict[str, Any]:
    """One backend at one size, in this (fresh) process."""
    import qdrant_client  # noqa: F401  (imported before the RSS baseline, like qdrant_edge below)
    import qdrant_edge  # noqa: F401

    from retrieval.store import Chunk, EdgeStore, ServerStore, VectorStore

    arrays = np.load(npz)
    vectors, source, queries = arrays["vectors"], arrays["source"], arrays["queries"]
    exact, exact_filtered = arrays["exact"], arrays["exact_filtered"]
    texts = json.loads(texts_file.read_text())
    baseline = peak_rss_mib()
    workdir = Path(tempfile.mkdtemp(prefix="bench-store-"))

    def open_store() -> VectorStore:
        if backend == "edge":
            return EdgeStore(workdir, hnsw_ef=hnsw_ef)
        from qdrant_client import QdrantClient

        return ServerStore(QdrantClient(":memory:"), ":memory:", hnsw_ef=hnsw_ef)

    store = open_store()
    store.create("bench", vectors.shape[1])
    start = time.perf_counter()
    for lo in range(0, len(vectors), UPSERT_BATCH):
        store.upsert(
            "bench",
            [
                Chunk(
                    chunk_id=f"c{i}",
                    doc_id=f"src{i % SOURCES}",
                    text=texts[source[i]],
                    vector=vectors[i].tolist(),
                    doc_sha256="0" * 64,
                )
                for i in range(lo, min(lo + UPSERT_BATCH, len(vectors)))
            ],
        )
    upsert_s = time.perf_counter() - start
    start = time.perf_counter()
    store.optimize("bench")
    index_s = time.perf_counter() - start

    def measure(doc_ids: list[str] | None, truth: np.ndarray) -> dict[str, float]:
        latencies, recalls = [], []
        deadline = time.perf_counter() + budget_s
        for q, expected in zip(queries, truth):
            start = time.perf_counter()
            hits = store.search("bench", q.tolist(), K, doc_ids=doc_ids)
            latencies.append((time.perf_counter() - start) * 1000)
            recalls.append(len({int(h.chunk_id[1:]) for h in hits} & set(expected.tolist())) / K)
            if time.perf_counter() > deadline and len(latencies) >= 10:
                break
        ms = np.asarray(latencies)
        return {
            "queries": len(ms),
            "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)),
            "recall@5": float(np.mean(recalls)),
        }

    result: dict[str, Any] = {
        "backend": backend,
        "size": len(vectors),
        "upsert_s": upsert_s,
        "index_s": index_s,
        "points_per_s": len(vectors) / (upsert_s + index_s),
        "search": measure(None, exact),
        "filtered": measure(FILTERED, exact_filtered),
    }
    if backend == "edge":
        store.close()
        start = time.perf_counter()
        store = open_store()
        store.search("bench", queries[0].tolist(), K)
        result["reopen_s"] = time.perf_counter() - start
    store.close()
    result["peak_rss_mib"] = peak_rss_mib()
    result["store_rss_mib"] = result["peak_rss_mib"] - baseline
    return result


def scale(
    base: np.ndarray,
    texts: list[str],
    queries: np.ndarray,
    sizes: list[int],
    backends: list[str],
    args: argparse.Namespace,
    work: Path,
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(args.seed)
    queries = queries[rng.permutation(len(queries))[: args.queries]]  # both datasets' questions
    texts_file = work / "texts.json"
    texts_file.write_text(json.dumps(texts))
    results = []
    for size in sizes:
        vectors, source = synthesize(base, size, args.noise, rng)
        mask = (np.arange(size) % SOURCES) < len(FILTERED)
        npz = work / f"vectors-{size}.npz"
        np.savez(
            npz,
            vectors=vectors,
            source=source,
            queries=queries,
            exact=exact_top_k(vectors, queries),
            exact_filtered=exact_top_k(vectors, queries, mask),
        )
        for backend in backends:
            print(f"  {backend} at {size:,} points ...", file=sys.stderr, flush=True)
            command = [
                sys.executable,
                __file__,
                "--worker",
                backend,
                "--npz",
                str(npz),
                "--texts",
                str(texts_file),
                "--budget-s",
                str(args.budget_s),
                "--hnsw-ef",
                str(args.hnsw_ef),
            ]
            out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
        npz.unlink()
    return results


# ---- report --------------------------------------------------------------------------------------


def print_report(
    qa: list[dict[str, Any]], runs: list[dict[str, Any]], real: int, questions: int, args: argparse.Namespace
) -> None:
    cpu = platform.processor() or platform.machine()
    print(
        f"# Retrieval benchmark ({time.strftime('%Y-%m-%d')}, {cpu}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f})\n"
    )
    print("## Grounded QA recall (embedded store, all-MiniLM-L6-v2, chunks of 600/100 characters)\n")
    print(
        "Recall@k: the share of gold documents among the top-k chunks (HotpotQA has 2 gold paragraphs "
        "per question, so its recall@1 is at most 0.5); all gold@5: questions with every gold document "
        "in the top 5. Ingest rate: read, chunk, embed and store, end to end.\n"
    )
    print(
        "| dataset | documents | chunks | questions | recall@1 | recall@3 | recall@5 | all gold@5 | ingest chunks/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in qa:
        print(
            f"| {r['dataset']} | {r['documents']} | {r['chunks']} | {r['questions']} "
            f"| {r['recall@1']:.3f} | {r['recall@3']:.3f} | {r['recall@5']:.3f} | {r['all_gold@5']:.3f} "
            f"| {r['chunks_per_s']:.0f} |"
        )
    if not runs:
        return
    print(f"\n## Store backends at scale (k={K}, hnsw_ef={args.hnsw_ef or 'engine default'})\n")
    print(
        f"The first {real:,} points are real MiniLM chunk vectors from the QA corpora; the rest are copies "
        f"of them plus Gaussian noise of norm ~{args.noise}, renormalised (embedding 100k texts at ~100/s "
        f"would take too long here). Queries: up to {min(args.queries, questions)} real question "
        "embeddings, cut short after "
        f"{args.budget_s:g} s on slow backends. Filtered: the 10% of points in 5 of 50 sources. Ingest: "
        "upsert in batches of 256, then the index build; vectors precomputed.\n"
    )
    print(
        "| backend | points | ingest points/s (upsert + index s) | p50 / p95 ms | recall@5 "
        "| filtered p50 / p95 ms | filtered recall@5 | reopen s | peak RSS MiB (store) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    names = {"edge": "qdrant-edge (embedded)", "memory": "qdrant-client local :memory:"}
    for r in runs:
        s, f = r["search"], r["filtered"]
        reopen = f"{r['reopen_s']:.2f}" if "reopen_s" in r else "n/a (not persisted)"
        print(
            f"| {names[r['backend']]} | {r['size']:,} | {r['points_per_s']:,.0f} ({r['upsert_s']:.1f} + "
            f"{r['index_s']:.1f}) | {s['p50_ms']:.2f} / {s['p95_ms']:.2f} | {s['recall@5']:.3f} | "
            f"{f['p50_ms']:.2f} / {f['p95_ms']:.2f} | {f['recall@5']:.3f} | {reopen} | "
            f"{r['peak_rss_mib']:.0f} ({r['store_rss_mib']:+.0f}) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=get_settings().data_dir,
        help="folder holding pubmedqa/ and hotpotqa_sample/",
    )
    parser.add_argument("--sizes", default="10000,100000", help="points per scale run, comma-separated; '' skips them")
    parser.add_argument("--backends", default="edge,memory", help="edge and/or memory (qdrant-client local mode)")
    parser.add_argument("--queries", type=int, default=300, help="queries per measurement, at most")
    parser.add_argument("--budget-s", type=float, default=30.0, help="stop a measurement after this long")
    parser.add_argument("--noise", type=float, default=0.3, help="norm of the noise added to copied vectors")
    parser.add_argument("--hnsw-ef", type=int, default=None, help="search ef (default: the store's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--worker", choices=["edge", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--npz", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hnsw_ef is None:
        from retrieval.store import DEFAULT_HNSW_EF

        args.hnsw_ef = DEFAULT_HNSW_EF
    hnsw_ef = args.hnsw_ef or None  # 0: the engine's own default

    if args.worker:
        print(json.dumps(run_worker(args.worker, args.npz, args.texts, args.budget_s, hnsw_ef)))
        return
    if not (args.data / "pubmedqa").is_dir():
        sys.exit(f"no benchmark data at {args.data} (pass --data)")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    backends = [b for b in args.backends.split(",") if b]
    with tempfile.TemporaryDirectory(prefix="slmflow-bench-") as tmp:
        work = Path(tmp)
        print("grounded QA: embedding the corpora ...", file=sys.stderr, flush=True)
        qa, base, texts, queries = grounded_qa(args.data, work)
        runs = scale(base, texts, queries, sizes, backends, args, work) if sizes else []
    print_report(qa, runs, len(base), len(queries), args)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "grounded_qa": qa,
                    "scale": runs,
                    "real_vectors": len(base),
                    "noise": args.noise,
                    "hnsw_ef": args.hnsw_ef,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
