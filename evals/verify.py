"""The verifier as the harness uses it: only through `verify(VerifyRequest) -> Verdict`.

Kinds are being added to the verifier while this harness is in use (`math`, `tool_call`), so
before judging a dataset the harness probes whether the verifier has checks of its own for the
dataset's kind. A kind it does not know is either refused (an exception) or, today, judged by
the generic `answer` checks; both cases are reported as "not supported yet" rather than turned
into misleading cascade figures.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from slmflow.core.records import Verdict, VerifyRequest

GENERIC_KIND = "answer"
NATIVE_KINDS = ("classify", "extract", "answer")  # the flow's own kinds, always judged natively


class VerifierLike(Protocol):
    def verify(self, request: VerifyRequest) -> Verdict: ...


@dataclass(frozen=True)
class Support:
    supported: bool
    reason: str = ""


def probe_support(verifier: VerifierLike, request: VerifyRequest) -> Support:
    """Whether `verifier` judges `request.kind` with checks of its own. Compares the checks it
    runs for the kind with those it runs for the generic kind on the same request: identical
    check names mean the kind fell through to the generic checks."""
    try:
        verdict = verifier.verify(request)
    except Exception as exc:  # noqa: BLE001 - any refusal means "cannot judge this kind"
        return Support(False, f"the verifier refused kind {request.kind!r}: {type(exc).__name__}: {exc}")
    if request.kind in NATIVE_KINDS:
        return Support(True)
    try:
        generic = verifier.verify(request.model_copy(update={"kind": GENERIC_KIND}))
    except Exception:  # noqa: BLE001 - no generic path to compare with: the kind is its own
        return Support(True)
    names = [c.name for c in verdict.checks]
    if names == [c.name for c in generic.checks]:
        return Support(
            False,
            f"the verifier has no checks for kind {request.kind!r} yet (it "
            f"applied the generic {GENERIC_KIND!r} checks: {', '.join(names)})",
        )
    return Support(True)


def fingerprint(verifier: VerifierLike) -> str:
    """Changes whenever the verifier may judge differently: its settings, its source code or the
    learned weights it loaded. Cached verdicts carry it, so editing or retraining the verifier
    invalidates them."""
    digest = hashlib.sha256(type(verifier).__qualname__.encode())
    settings = getattr(verifier, "settings", None)
    dump = getattr(settings, "model_dump_json", None)
    if callable(dump):
        digest.update(dump().encode())
    files = getattr(getattr(verifier, "learned", None), "files", None) or {}
    for path in sorted(map(Path, files.values())):
        digest.update(path.read_bytes())
    module_file = getattr(sys.modules.get(type(verifier).__module__), "__file__", None)
    if module_file:
        for source in sorted(Path(module_file).parent.glob("*.py")):
            digest.update(source.name.encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]
