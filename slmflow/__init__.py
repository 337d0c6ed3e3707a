"""slmflow: agent jobs on a fleet of small models, grounded, verified, escalated only on failure.

Two floors live here: `slmflow.core` (the ground every part imports) and `slmflow.cli` (the top,
which imports every part). See docs/architecture.md.
"""
