"""The user simulator's side of a tau2 conversation: its system prompt, and how it ends a run.

Follows tau2's user simulator (`src/tau2/user/user_simulator.py` and the guidelines in
`data/tau2/user_simulator/simulation_guidelines.md`): the simulated customer knows only the task's
scenario, discloses it progressively, and ends the conversation with a token. No model is called
here; the caller sends this prompt to whichever model plays the user.
"""

from __future__ import annotations

import textwrap

from evals.tau2.tasks import Task

STOP = "###STOP###"  # the scenario's goal is met
TRANSFER = "###TRANSFER###"  # the agent handed the customer to a human
OUT_OF_SCOPE = "###OUT-OF-SCOPE###"  # the scenario gives the user nothing to go on

# First match wins: a message with both an abort and a stop token is an abort, and tau2 does not
# grade an aborted (out-of-scope) run.
STOP_TOKENS = (OUT_OF_SCOPE, STOP, TRANSFER)

GUIDELINES = f"""\
# User Simulation Guidelines
You play a customer who has contacted a customer service agent. Make the conversation realistic
while following the scenario instructions below exactly.

## Core Principles
- Write one message at a time, as a customer would in a natural conversation.
- Follow the scenario instructions strictly.
- Never invent information the scenario does not give you. Anything the scenario does not state is
  unknown or unavailable to you.
- Do not repeat the instructions word for word; say the same things in your own words.
- Disclose information progressively: give a detail only when the agent asks for it.

## Task Completion
- Keep the conversation going until the task is complete; do not end it early. Agreeing to an
  action is not the action being done: if the agent offers to do something (cancel an order,
  process a refund), wait until the agent confirms that it is done.
- Before you end the conversation, check that every request, question and task in your
  instructions has been dealt with, not only some of them.
- When the goal of your instructions is met, write '{STOP}' to end the conversation.
- If you are transferred to another agent, write '{TRANSFER}' to indicate the transfer.
- If the scenario does not give you enough information to continue the conversation, write
  '{OUT_OF_SCOPE}' to end it.

Remember: the conversation should read as a real one, keep strictly to your instructions, and stay
in character."""


def _indented(title: str, text: str) -> str:
    return title + "\n" + textwrap.indent(text, "\t")


def scenario_text(task: Task) -> str:
    """The scenario as tau2 prints it for the user simulator (`UserScenario.__str__`)."""
    ins = task.user_scenario.instructions
    lines = [f"Domain: {ins.domain}", _indented("Reason for call:", ins.reason_for_call)]
    if ins.known_info is not None:
        lines.append(_indented("Known info:", ins.known_info))
    if ins.unknown_info is not None:
        lines.append(_indented("Unknown info:", ins.unknown_info))
    lines.append(_indented("Task instructions:", ins.task_instructions))
    parts = []
    if task.user_scenario.persona is not None:
        parts.append(_indented("Persona:", task.user_scenario.persona))
    parts.append(_indented("Instructions:", "\n".join(lines)))
    return "\n".join(parts)


def user_system_prompt(task: Task) -> str:
    """The simulated customer's system prompt: the guidelines, then the task's scenario only (never
    its gold actions or the facts the agent must communicate)."""
    return f"{GUIDELINES}\n\n<scenario>\n{scenario_text(task)}\n</scenario>"


def stop_token(text: str | None) -> str | None:
    """The token with which this user message ends the conversation, if it does."""
    if not text:
        return None
    return next((token for token in STOP_TOKENS if token in text), None)


def is_stop(text: str | None) -> bool:
    """Whether this user message ends the conversation."""
    return stop_token(text) is not None
