"""Retrieval benchmark: relevance on real questions, then search end to end (embed the query, then
search) at scale with each embedding runtime side by side.

    nice -n 10 .venv/bin/python benchmarks/retrieval.py --markdown /tmp/retrieval.md   # 10k and 100k
    nice -n 10 .venv/bin/python benchmarks/retrieval.py --sizes 2000 --backends edge --queries 50  # quick

1. Relevance. PubMedQA dev (500 questions; each question's gold context is its own abstract, among
   all 500) and the HotpotQA sample (53 questions; 10 paragraphs each, 2 of them gold, all pooled in
   one collection) go through the real `ingest()` into the embedded store, once per runtime, each
   into a collection of its own, which that runtime then searches with every question embedded.
   Recall@k: the share of gold documents among the top-k chunks. These collections are below
   Qdrant's indexing threshold, so their search is exact.
2. Embedding throughput: batches of 64 real chunks through each runtime, alternating.
3. Scale. The chunk vectors embedded in step 1 (real all-MiniLM-L6-v2 vectors) fill the first
   points; embedding 100k texts here would take too long, so the rest are copies of real vectors
   with small Gaussian noise, renormalised. Each (backend, size) runs in its own process, so peak
   RSS is its own. The questions are shuffled once (--seed) and split: the first --tuning of them
   choose `hnsw_ef` (the smallest of SWEEP whose recall@5 against exact search reaches
   --target-recall), and the next --queries are the reported ones, so the beam is never tuned on
   the questions it is judged on. End to end: each reported question's text is embedded and
   searched, the runtimes alternating per question. Recall@5 is against exact search in numpy.
   The filtered search keeps 5 of 50 "sources" (10% of the points).

Data is read from settings.data_dir (../shared/data beside the checkout) and never copied into the
repository. --markdown writes the printed tables, without the header naming the command and the
machine, for `make bench` (benchmarks/report.py), which adds its own.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import shutil
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
SWEEP = [32, 64, 128, 256, 512]
WARM_UP = 5  # queries per runtime before timing: first calls allocate buffers


def peak_rss_mib() -> float:
    """VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a worker would report the
    parent's peak (torch and the embedding model) as its own."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # macOS: bytes


def percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def describe_machine() -> str:
    cpu = platform.processor() or platform.machine()
    memory = ""
    if Path("/proc/cpuinfo").exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
        total_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f", {total_kib / 2**20:.0f} GiB"
    versions = ", ".join(
        f"{package} {importlib.metadata.version(package)}"
        for package in ("torch", "onnxruntime", "sentence-transformers", "qdrant-edge-py")
    )
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{cpu}, {os.cpu_count()} CPUs{memory}; {system}; {versions}"


# ---- 1. relevance --------------------------------------------------------------------------------


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


def relevance(
    data: Path, work: Path, runtimes: list[str]
) -> tuple[list[dict[str, Any]], np.ndarray, list[str], list[str], np.ndarray]:
    """Recall rows, plus for step 3 the real chunk vectors and texts, and the questions' texts and
    vectors (from the first runtime)."""
    from retrieval.embedder import Embedder
    from retrieval.ingest import ingest
    from retrieval.store import EdgeStore

    class Recording(Embedder):
        def __init__(self) -> None:
            super().__init__(runtime=runtimes[0])
            self.texts: list[str] = []
            self.vectors: list[list[float]] = []

        def embed(self, texts: list[str]) -> list[list[float]]:
            vectors = super().embed(texts)
            self.texts += texts
            self.vectors += vectors
            return vectors

    recording = Recording()
    embedders = {runtime: Embedder(runtime=runtime) for runtime in runtimes}
    for embedder in embedders.values():
        embedder.embed(["warm-up"])  # load the models outside the timings
    store = EdgeStore(work / "qa-qdrant")
    rows: list[dict[str, Any]] = []
    question_texts: list[str] = []
    question_vectors: list[list[float]] = []
    for name, (docs, questions) in {
        "PubMedQA dev": load_pubmedqa(data),
        "HotpotQA sample": load_hotpotqa(data),
    }.items():
        folder = work / name.replace(" ", "_")
        folder.mkdir()
        with (folder / "corpus.jsonl").open("w") as fh:
            for doc_id, text in docs.items():
                fh.write(json.dumps({"id": doc_id, "text": text}) + "\n")
        texts = [q for q, _ in questions]
        question_texts += texts
        for runtime, embedder in embedders.items():
            # Each runtime ingests its own collection: int8 vectors have a version of their own,
            # so a collection is never searched with a runtime it was not embedded with here.
            collection = f"{name.split()[0].lower()}-{runtime}"
            start = time.perf_counter()
            report = ingest(folder, collection, store, recording if runtime == runtimes[0] else embedder)
            ingest_s = time.perf_counter() - start
            vectors = embedder.embed(texts)
            if runtime == runtimes[0]:
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
                    "runtime": runtime,
                    "documents": report.documents,
                    "chunks": report.chunks,
                    "questions": len(questions),
                    "ingest_chunks_per_s": report.chunks / ingest_s,
                    "all_gold@5": statistics.mean(all_gold),
                    **{f"recall@{k}": statistics.mean(v) for k, v in recall.items()},
                }
            )
    store.close()
    return (
        rows,
        np.asarray(recording.vectors, np.float32),
        recording.texts,
        question_texts,
        np.asarray(question_vectors, np.float32),
    )


# ---- 2. embedding throughput ---------------------------------------------------------------------


def throughput(texts: list[str], runtimes: list[str], rounds: int = 3, batch: int = 64) -> list[dict[str, Any]]:
    """Chunks/s through each runtime on the same real chunks, the runtimes alternating per round."""
    from retrieval.embedder import Embedder

    sample = texts[: batch * 4]
    rates: dict[str, list[float]] = {runtime: [] for runtime in runtimes}
    for _ in range(rounds):
        for runtime in runtimes:
            start = time.perf_counter()
            Embedder(runtime=runtime, batch_size=batch).embed(sample)
            rates[runtime].append(len(sample) / (time.perf_counter() - start))
    return [
        {
            "runtime": r,
            "chunks": len(sample),
            "rounds": rounds,
            "mean": statistics.mean(v),
            "min": min(v),
            "max": max(v),
        }
        for r, v in rates.items()
    ]


# ---- 3. scale ------------------------------------------------------------------------------------


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


def choose_ef(sweep: list[dict[str, float]], target: float) -> int:
    """The smallest beam whose recall reaches the target; the best one if none does."""
    reaching = [s for s in sweep if s["recall@5"] >= target]
    best = reaching[0] if reaching else max(sweep, key=lambda s: s["recall@5"])
    return int(best["hnsw_ef"])


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """One backend at one size, in this (fresh) process; its store's folder is removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        return measure_store(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure_store(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import qdrant_client  # noqa: F401  (imported before the RSS baseline, like qdrant_edge below)
    import qdrant_edge  # noqa: F401

    from retrieval.store import Chunk, EdgeStore, ServerStore, VectorStore

    arrays = np.load(args.npz)
    vectors, source = arrays["vectors"], arrays["source"]
    texts = json.loads(args.texts.read_text())
    baseline = peak_rss_mib()
    edge = args.worker == "edge"

    def open_store(hnsw_ef: int | None) -> VectorStore:
        if edge:
            return EdgeStore(workdir, hnsw_ef=hnsw_ef)
        from qdrant_client import QdrantClient

        return ServerStore(QdrantClient(":memory:"), ":memory:", hnsw_ef=hnsw_ef)

    store = open_store(args.hnsw_ef)
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

    def recall(hits: list[Any], expected: np.ndarray) -> float:
        return len({int(h.chunk_id[1:]) for h in hits} & set(expected.tolist())) / K

    def measure(queries: np.ndarray, truth: np.ndarray, doc_ids: list[str] | None = None) -> dict[str, float]:
        latencies, recalls = [], []
        deadline = time.perf_counter() + args.budget_s
        for q, expected in zip(queries, truth):
            start = time.perf_counter()
            hits = store.search("bench", q.tolist(), K, doc_ids=doc_ids)
            latencies.append((time.perf_counter() - start) * 1000)
            recalls.append(recall(hits, expected))
            if time.perf_counter() > deadline and len(latencies) >= 10:
                break
        return {"queries": len(latencies), **percentiles(latencies), "recall@5": float(np.mean(recalls))}

    result: dict[str, Any] = {
        "backend": args.worker,
        "size": len(vectors),
        "upsert_s": upsert_s,
        "index_s": index_s,
        "points_per_s": len(vectors) / (upsert_s + index_s),
    }
    if edge and args.hnsw_ef is None:
        sweep = []
        for ef in SWEEP:
            store.hnsw_ef = ef  # EdgeStore reads it at every search
            sweep.append({"hnsw_ef": ef, **measure(arrays["tuning"], arrays["tuning_exact"])})
        result["sweep"] = sweep
        store.hnsw_ef = choose_ef(sweep, args.target_recall)
    result["hnsw_ef"] = getattr(store, "hnsw_ef", None) if edge else None
    result["search"] = measure(arrays["queries"], arrays["exact"])
    result["filtered"] = measure(arrays["queries"], arrays["exact_filtered"], FILTERED)
    if edge:
        store.close()
        start = time.perf_counter()
        store = open_store(result["hnsw_ef"])
        store.search("bench", arrays["queries"][0].tolist(), K)
        result["reopen_s"] = time.perf_counter() - start
    result["peak_rss_mib"] = peak_rss_mib()  # before the embedding models load below
    result["store_rss_mib"] = result["peak_rss_mib"] - baseline
    if edge:
        result["end_to_end"] = end_to_end(store, json.loads(args.questions.read_text()), vectors, args, recall)
    store.close()
    return result


def end_to_end(
    store: Any, questions: list[str], points: np.ndarray, args: argparse.Namespace, recall: Any
) -> list[dict[str, Any]]:
    """Embed each question's text, then search: per runtime, the runtimes alternating per question
    so that a change in the machine's load falls on both. The embedding's CPU time (all of this
    process's threads) is kept too: on a loaded machine it says what the wall time cannot, how
    much work a query is. Recall is against exact search with the vector that runtime made."""
    from retrieval.embedder import Embedder

    runtimes = args.runtimes.split(",")
    embedders = {r: Embedder(runtime=r) for r in runtimes}
    for embedder in embedders.values():
        for text in questions[:WARM_UP]:
            store.search("bench", embedder.embed([text])[0], K)
    parts = ("total", "embed", "search", "embed_cpu")
    timings: dict[str, dict[str, list[float]]] = {r: {part: [] for part in parts} for r in runtimes}
    answers: dict[str, list[tuple[list[float], list[Any]]]] = {r: [] for r in runtimes}
    for i, text in enumerate(questions):
        for runtime in runtimes if i % 2 == 0 else runtimes[::-1]:
            start, cpu = time.perf_counter(), time.process_time()
            vector = embedders[runtime].embed([text])[0]
            embedded = time.perf_counter()
            timings[runtime]["embed_cpu"].append((time.process_time() - cpu) * 1000)
            hits = store.search("bench", vector, K)
            done = time.perf_counter()
            timings[runtime]["total"].append((done - start) * 1000)
            timings[runtime]["embed"].append((embedded - start) * 1000)
            timings[runtime]["search"].append((done - embedded) * 1000)
            answers[runtime].append((vector, hits))
    # After the timings: numpy's BLAS threads keep spinning a while after a product.
    recalls = {
        r: [
            recall(hits, expected)
            for (_, hits), expected in zip(got, exact_top_k(points, np.asarray([v for v, _ in got], np.float32)))
        ]
        for r, got in answers.items()
    }
    return [
        {
            "runtime": r,
            "queries": len(questions),
            **{f"{part}_{k}": v for part, ms in timings[r].items() for k, v in percentiles(ms).items()},
            "recall@5": float(np.mean(recalls[r])),
        }
        for r in runtimes
    ]


def scale(
    base: np.ndarray,
    texts: list[str],
    questions: list[str],
    question_vectors: np.ndarray,
    args: argparse.Namespace,
    work: Path,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(questions))
    tuning, reported = order[: args.tuning], order[args.tuning : args.tuning + args.queries]
    split = {
        "questions": len(questions),
        "tuning": [questions[i] for i in tuning],
        "reported": [questions[i] for i in reported],
    }
    texts_file, questions_file = work / "texts.json", work / "questions.json"
    texts_file.write_text(json.dumps(texts))
    questions_file.write_text(json.dumps(split["reported"]))
    results = []
    for size in [int(s) for s in args.sizes.split(",") if s]:
        vectors, source = synthesize(base, size, args.noise, rng)
        mask = (np.arange(size) % SOURCES) < len(FILTERED)
        npz = work / f"vectors-{size}.npz"
        queries, tuning_queries = question_vectors[reported], question_vectors[tuning]
        np.savez(
            npz,
            vectors=vectors,
            source=source,
            queries=queries,
            exact=exact_top_k(vectors, queries),
            exact_filtered=exact_top_k(vectors, queries, mask),
            tuning=tuning_queries,
            tuning_exact=exact_top_k(vectors, tuning_queries),
        )
        for backend in args.backends.split(","):
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
                "--questions",
                str(questions_file),
                "--budget-s",
                str(args.budget_s),
                "--target-recall",
                str(args.target_recall),
                "--runtimes",
                args.runtimes,
            ]
            if args.hnsw_ef is not None:
                command += ["--hnsw-ef", str(args.hnsw_ef)]
            # torch's OpenMP threads spin for a while after each call by default, taking the cores
            # from the next runtime's query; the retrieval actor never loads torch at all.
            env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}
            out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO, env=env).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
        npz.unlink()
    return results, split


# ---- report --------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def header(results: dict[str, Any]) -> str:
    """What ran where: printed above the tables, and left out of --markdown, whose reader
    (benchmarks/report.py) adds its own command line and machine description."""
    return (
        f"## Retrieval benchmark ({results['date']}, {results['minutes']:.1f} min)\n\n"
        f"Machine: {results['machine']}. Load average {results['load_before']:.1f} at the start, "
        f"{results['load_after']:.1f} at the end.\n\nCommand: `{results['command']}`\n"
    )


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    """The tables, as markdown."""
    from retrieval.store import DEFAULT_HNSW_EF

    runtime_names = {"onnx": "ONNX Runtime", "onnx-int8": "ONNX Runtime, int8", "torch": "torch"}
    lines = [
        "### Relevance on real questions (embedded store, all-MiniLM-L6-v2, chunks of 600/100 characters)",
        "",
        "Recall@k: the share of gold documents among the top-k chunks (HotpotQA has 2 gold paragraphs per "
        "question, so its recall@1 is at most 0.5); all gold@5: questions with every gold document in the "
        "top 5. Each runtime ingests the corpora into a collection of its own (ingest: read, chunk, embed and "
        "store, end to end) and embeds the questions. At these sizes the search is exact.",
        "",
    ]
    lines += table(
        ["dataset", "documents", "chunks", "questions", "runtime", "recall@1", "recall@3", "recall@5"]
        + ["all gold@5", "ingest chunks/s"],
        [
            [r["dataset"], str(r["documents"]), str(r["chunks"]), str(r["questions"]), runtime_names[r["runtime"]]]
            + [f"{r[k]:.3f}" for k in ("recall@1", "recall@3", "recall@5", "all_gold@5")]
            + [f"{r['ingest_chunks_per_s']:.0f}"]
            for r in results["relevance"]
        ],
    )
    lines += ["", "### Embedding throughput (ingest)", ""]
    first = results["throughput"][0]
    lines += [
        f"{first['chunks']} real chunks (up to 600 characters) in batches of 64, {first['rounds']} rounds, "
        "the runtimes alternating.",
        "",
    ]
    lines += table(
        ["runtime", "chunks/s, mean (min-max)"],
        [
            [runtime_names[t["runtime"]], f"{t['mean']:.0f} ({t['min']:.0f}-{t['max']:.0f})"]
            for t in results["throughput"]
        ],
    )
    runs = results["scale"]
    if not runs:
        return "\n".join(lines) + "\n"
    split = results["split"]
    lines += [
        "",
        "### Search at scale",
        "",
        f"The first {results['real_vectors']:,} points are real MiniLM chunk vectors from the corpora above; the "
        f"rest are copies of them plus Gaussian noise of norm ~{args.noise}, renormalised. The "
        f"{split['questions']} questions of both datasets were shuffled (seed "
        f"{args.seed}): the first {len(split['tuning'])} tune `hnsw_ef` (the smallest of {SWEEP} whose "
        f"recall@5 against exact search reaches {args.target_recall}), the next {len(split['reported'])} "
        "are reported. Recall@5 is against exact search in numpy (HNSW against exact, not relevance).",
        "",
        "End to end: embed the question's text, then search (k=5), one question at a time, the runtimes "
        "alternating per question. Embed CPU: the process's CPU time (all threads) for the embedding, which "
        "a loaded machine inflates less than wall time.",
        "",
    ]
    e2e_rows = []
    for r in runs:
        for e in r.get("end_to_end", []):
            e2e_rows.append(
                [
                    f"{r['size']:,}",
                    runtime_names[e["runtime"]],
                    str(r["hnsw_ef"]),
                    f"**{e['total_p50_ms']:.2f}** / {e['total_p95_ms']:.2f}",
                    f"{e['embed_p50_ms']:.2f} / {e['embed_p95_ms']:.2f}",
                    f"{e['embed_cpu_p50_ms']:.2f}",
                    f"{e['search_p50_ms']:.2f} / {e['search_p95_ms']:.2f}",
                    f"{e['recall@5']:.3f}",
                    str(e["queries"]),
                ]
            )
    lines += table(
        ["points", "query embedding", "hnsw_ef", "end to end p50 / p95 ms", "embed p50 / p95 ms", "embed CPU p50 ms"]
        + ["search p50 / p95 ms", "recall@5 vs exact", "queries"],
        e2e_rows,
    )
    lines += [
        "",
        "Store alone (query vectors precomputed). Ingest: upsert in batches of 256, then the index build. "
        "Filtered: the 10% of points in 5 of 50 sources (exact by design). Peak RSS is the worker's VmHWM "
        "before the embedding models load, with the growth over the loaded vectors in brackets. A slow "
        f"backend stops after {args.budget_s:g} s of queries (at least 10).",
        "",
    ]
    names = {"edge": "qdrant-edge (embedded)", "memory": "qdrant-client local :memory:"}
    lines += table(
        ["backend", "points", "ingest points/s (upsert + index s)", "hnsw_ef", "p50 / p95 ms", "recall@5"]
        + ["filtered p50 / p95 ms", "filtered recall@5", "reopen s", "peak RSS MiB (store)"],
        [
            [
                names[r["backend"]],
                f"{r['size']:,}",
                f"{r['points_per_s']:,.0f} ({r['upsert_s']:.1f} + {r['index_s']:.1f})",
                str(r["hnsw_ef"]) if r["hnsw_ef"] else "n/a (exact)",
                f"{r['search']['p50_ms']:.2f} / {r['search']['p95_ms']:.2f}",
                f"{r['search']['recall@5']:.3f}",
                f"{r['filtered']['p50_ms']:.2f} / {r['filtered']['p95_ms']:.2f}",
                f"{r['filtered']['recall@5']:.3f}",
                f"{r['reopen_s']:.2f}" if "reopen_s" in r else "n/a (not persisted)",
                f"{r['peak_rss_mib']:.0f} ({r['store_rss_mib']:+.0f})",
            ]
            for r in runs
        ],
    )
    swept = [r for r in runs if "sweep" in r]
    if swept:
        lines += [
            "",
            f"`hnsw_ef` on the {len(split['tuning'])} tuning questions (store alone; chosen: the smallest "
            f"reaching recall@5 {args.target_recall}; the store's default is {DEFAULT_HNSW_EF}):",
            "",
        ]
        lines += table(
            ["points", *[f"ef {ef}" for ef in SWEEP], "chosen"],
            [
                [f"{r['size']:,}"]
                + [f"{s['recall@5']:.3f} @ {s['p50_ms']:.2f} ms" for s in r["sweep"]]
                + [str(r["hnsw_ef"])]
                for r in swept
            ],
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=get_settings().data_dir, help="folder holding pubmedqa/ and hotpotqa_sample/"
    )
    parser.add_argument("--sizes", default="10000,100000", help="points per scale run, comma-separated; '' skips them")
    parser.add_argument("--backends", default="edge,memory", help="edge and/or memory (qdrant-client local mode)")
    parser.add_argument(
        "--runtimes",
        default="onnx,onnx-int8,torch",
        help="embedding runtimes, compared; the first one's vectors fill the scale runs",
    )
    parser.add_argument("--queries", type=int, default=300, help="reported questions at scale, at most")
    parser.add_argument("--tuning", type=int, default=100, help="questions that choose hnsw_ef, never reported")
    parser.add_argument("--target-recall", type=float, default=0.95, help="recall@5 the chosen hnsw_ef must reach")
    parser.add_argument("--hnsw-ef", type=int, default=None, help="a fixed search beam instead of tuning one")
    parser.add_argument("--budget-s", type=float, default=30.0, help="stop a store measurement after this long")
    parser.add_argument("--noise", type=float, default=0.3, help="norm of the noise added to copied vectors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--markdown", type=Path, help="also write the printed tables here, for the docs")
    parser.add_argument("--worker", choices=["edge", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--npz", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--questions", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(run_worker(args)))
        return
    if not (args.data / "pubmedqa").is_dir():
        sys.exit(f"no benchmark data at {args.data} (pass --data or set SLMFLOW_DATA_DIR)")
    from retrieval.embedder import Embedder
    from retrieval.errors import EmbedderError

    runtimes = args.runtimes.split(",")
    try:
        for runtime in runtimes:
            Embedder(runtime=runtime).embed(["check"])
    except EmbedderError as exc:
        sys.exit(f"{exc} (or pass --runtimes torch)")

    started = time.perf_counter()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(),
        "command": "benchmarks/retrieval.py " + " ".join(sys.argv[1:]),
        "load_before": os.getloadavg()[0],
        "runtimes": runtimes,
        "noise": args.noise,
    }
    with tempfile.TemporaryDirectory(prefix="slmflow-bench-") as tmp:
        work = Path(tmp)
        print("relevance: embedding the corpora ...", file=sys.stderr, flush=True)
        results["relevance"], base, texts, questions, question_vectors = relevance(args.data, work, runtimes)
        results["throughput"] = throughput(texts, runtimes)
        results["scale"], results["split"] = scale(base, texts, questions, question_vectors, args, work)
    results["real_vectors"] = len(base)
    results["load_after"] = os.getloadavg()[0]
    results["minutes"] = (time.perf_counter() - started) / 60
    tables = report(results, args)
    print(header(results) + "\n" + tables)
    if args.markdown:
        args.markdown.write_text(tables)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
