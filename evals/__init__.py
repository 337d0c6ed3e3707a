"""Evaluation harness: grade small and frontier answers on public datasets, replay the verifier
over them, and measure what the verified cascade buys (accuracy, escalation, cost).

Nothing here imports Ray or Prefect; live runs take any object with the `Workers` methods
`small(request)` and `frontier(request)`.
"""
