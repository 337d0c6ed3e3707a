"""Grounding of free-text answers in evidence, and the classify/extract structural checks."""

from __future__ import annotations

import pytest

from slmflow.core.records import Evidence, VerifyRequest
from verification import grounding
from verification.verifier import Verifier

EVIDENCE = [
    Evidence(
        chunk_id="kb-1",
        doc_id="qdrant",
        collection="kb",
        score=1.0,
        text="Qdrant is a vector database written in Rust. It was first released on May 31, 2021.",
    ),
    Evidence(
        chunk_id="kb-2",
        doc_id="qdrant",
        collection="kb",
        score=0.9,
        text="Search latency did not increase with 10,000 points.",
    ),
]


def check(answer: str, evidence=EVIDENCE, embedder=None):
    req = VerifyRequest(kind="answer", source="Tell me about Qdrant.", text=answer, output=answer, evidence=evidence)
    return Verifier(embedder=embedder).verify(req)


def test_supported_answer_with_citations_passes() -> None:
    v = check("Qdrant is written in Rust [1]. It was released on 31 May 2021 [kb-1].")
    assert v.accept, v.reasons


def test_wrong_name_is_caught_even_though_the_sentence_looks_alike() -> None:
    v = check("Qdrant is written in Rust. Qdrant is written in Java.")
    assert not v.accept
    assert "sentence 2" in v.reasons[0] and "Java" in v.reasons[0]


def test_numbers_and_dates_are_normalised() -> None:
    assert check("Latency did not increase with 10000 points [2].").accept
    assert not check("It was released on May 30, 2021.").accept
    assert "2020" in " ".join(check("It was released in 2020.").reasons)


def test_negation_and_opposites_are_caught() -> None:
    assert "negation" in " ".join(check("Search latency did increase with 10,000 points.").reasons)
    assert "opposite" in " ".join(check("Search latency did not decrease with 10,000 points.").reasons)


def test_citations_must_exist() -> None:
    reasons = " ".join(check("Qdrant is written in Rust [3]. It is a vector database [kb-9].").reasons)
    assert "'3'" in reasons and "kb-9" in reasons


def test_unsupported_claim_and_missing_evidence() -> None:
    assert "supported" in " ".join(check("Pinecone offers managed hosting plans for enterprises.").reasons)
    assert "no evidence" in " ".join(check("Qdrant is written in Rust.", evidence=[]).reasons)


def test_declining_is_not_an_unsupported_claim() -> None:
    assert check("The context does not say which licence Qdrant uses.").accept


class FakeEmbedder:
    """Every text maps to the same direction except ones mentioning 'bananas'."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [[0.0, 1.0] if "bananas" in t else [1.0, 0.0] for t in texts]


def test_embedder_can_only_add_a_reason_to_reject() -> None:
    assert check("Qdrant is written in Rust.", embedder=FakeEmbedder()).accept
    a = grounding.analyse("Qdrant is a database written in Rust bananas.", EVIDENCE, "", FakeEmbedder())
    assert a.sentences[0].semantic == 0.0
    assert "in meaning" in " ".join(
        check("Qdrant is a database written in Rust bananas.", embedder=FakeEmbedder()).reasons
    )


def test_classify_and_extract_keep_their_behaviour() -> None:
    v = Verifier()
    ok = v.verify(
        VerifyRequest(
            kind="classify",
            source="s",
            text="billing",
            output="billing",
            choices=["billing", "shipping"],
            confidence=0.9,
        )
    )
    bad = v.verify(
        VerifyRequest(kind="classify", source="s", text="refunds", output="refunds", choices=["billing", "shipping"])
    )
    assert ok.accept and not bad.accept and "not one of" in bad.reasons[0]
    schema = {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}
    good = v.verify(
        VerifyRequest(
            kind="extract", source="order NB-1", text='{"order": "NB-1"}', output={"order": "NB-1"}, json_schema=schema
        )
    )
    broken = v.verify(VerifyRequest(kind="extract", source="order NB-1", text="{oops", output=None, json_schema=schema))
    missing = v.verify(VerifyRequest(kind="extract", source="x", text="{}", output={}, json_schema=schema))
    assert good.accept and not broken.accept and "not JSON" in broken.reasons[0]
    assert "'order' is a required property" in missing.reasons[0]


def test_a_broken_schema_is_a_rejection_not_a_crash() -> None:
    v = Verifier()
    for schema in ({"type": 5}, {"$ref": "#/nowhere"}):
        verdict = v.verify(VerifyRequest(kind="extract", source="x", text="{}", output={}, json_schema=schema))
        assert not verdict.accept and "schema" in verdict.reasons[0]


# ------------------------------------------------- the FAQ job of issue #16, with its one document

POLICY = (
    "Returns policy. Unopened items can be returned within 30 days of delivery for a full refund. "
    "Opened electronics can be returned within 14 days of delivery. Gift cards cannot be returned."
)
FAQ_CHOICES = ["shipping", "returns", "billing", "account", "devices"]


def faq(question: str, answer: str):
    from slmflow.core.settings import VerifierSettings

    evidence = [Evidence(chunk_id="1", doc_id="policy", text=POLICY, score=1.0, collection="kb")]
    req = VerifyRequest(
        kind="answer",
        source=f"Context:\n[1] {POLICY}\n\n{question}",
        question=question,
        text=answer,
        output=answer,
        evidence=evidence,
    )
    return Verifier.configured(VerifierSettings()).verify(req)


@pytest.mark.parametrize(
    "question,answer,why",
    [
        (
            "Can I return a gift card I bought last week?",
            "Yes, you can return a gift card you bought last week.",
            "reverses the negation of 'Gift cards cannot be returned.'",
        ),
        (
            "How long do I have to return an opened laptop?",
            "You can return an opened laptop within 30 days of delivery.",
            "says 30 days where the passage closest to it says 14",
        ),
    ],
)
def test_faq_answers_that_contradict_the_only_evidence_are_rejected(question: str, answer: str, why: str) -> None:
    verdict = faq(question, answer)
    assert not verdict.accept and verdict.score == 0.0
    assert any(r.startswith("grounding:") and why in r for r in verdict.reasons)


@pytest.mark.parametrize(
    "question,answer",
    [
        ("Can I return a gift card I bought last week?", "No. Gift cards cannot be returned."),
        ("How long do I have to return an opened laptop?", "Opened electronics can be returned within 14 days."),
        ("Can I return unopened headphones?", "Unopened items can be returned within 30 days of delivery."),
    ],
)
def test_faq_answers_the_evidence_supports_are_accepted(question: str, answer: str) -> None:
    assert faq(question, answer).accept


@pytest.mark.parametrize(
    "ticket", ["Can I return a gift card I bought last week?", "I opened my laptop and want to return it."]
)
def test_faq_label_the_request_contradicts_is_rejected_whatever_the_confidence(ticket: str) -> None:
    req = VerifyRequest(
        kind="classify", source=f"Ticket: {ticket}", text="shipping", output="shipping", choices=FAQ_CHOICES
    )
    for confidence in (0.74, 0.99):
        verdict = Verifier().verify(req.model_copy(update={"confidence": confidence}))
        assert not verdict.accept and "label_fits: the request speaks of 'returns'" in verdict.reasons[0]
    right = req.model_copy(update={"text": "returns", "output": "returns", "confidence": 0.74})
    assert Verifier().verify(right).accept


def test_a_label_no_request_spells_out_is_left_to_the_other_checks() -> None:
    req = VerifyRequest(
        kind="classify", source="I loved it!", text="positive", output="positive", choices=["positive", "negative"]
    )
    assert Verifier().verify(req).accept
