"""Structural checks for tool calls against offered function specs."""

from __future__ import annotations

import json

import pytest

from slmflow.core.records import VerifyRequest
from verification import tool_calls as tc
from verification.verifier import Verifier

BFCL_TOOL = {
    "name": "spotify.play",
    "description": "Play specific tracks from a given artist for a duration.",
    "parameters": {
        "type": "dict",
        "required": ["artist", "duration"],
        "properties": {
            "artist": {"type": "string", "description": "The artist whose songs to play."},
            "duration": {"type": "integer", "description": "Minutes to play."},
            "shuffle": {"type": "boolean", "description": "Shuffle the tracks."},
            "quality": {"type": "string", "enum": ["low", "high"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    },
}
OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        },
    },
}
QUESTION = "Play songs from Taylor Swift for 20 minutes on Spotify."


def failed(answer: str, question: str = QUESTION, tools=None) -> dict[str, str]:
    req = VerifyRequest(
        kind="tool_call", source=question, text=answer, output=None, tools=tools if tools is not None else [BFCL_TOOL]
    )
    return {c.name: c.reason for c in Verifier().verify(req).checks if not c.passed}


@pytest.mark.parametrize(
    "answer",
    [
        "[spotify.play(artist='Taylor Swift', duration=20)]",
        "spotify.play(artist='Taylor Swift', duration=20, shuffle=True, quality='high')",
        json.dumps({"name": "spotify.play", "arguments": {"artist": "Taylor Swift", "duration": 20}}),
        json.dumps(
            {
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {
                            "name": "spotify.play",
                            "arguments": json.dumps({"artist": "Taylor Swift", "duration": 20}),
                        },
                    }
                ]
            }
        ),
        json.dumps([{"spotify.play": {"artist": "Taylor Swift", "duration": 20}}]),
        "```json\n"
        + json.dumps({"name": "spotify.play", "arguments": {"artist": "Taylor Swift", "duration": 20}})
        + "\n```",
    ],
)
def test_valid_calls_in_every_dialect_pass(answer: str) -> None:
    assert failed(answer) == {}


@pytest.mark.parametrize(
    "answer,needle",
    [
        ("[spotify.pause(artist='Taylor Swift', duration=20)]", "unknown function 'spotify.pause'"),
        ("[spotify.play(artist='Taylor Swift')]", "required parameter 'duration' is missing"),
        ("[spotify.play(artist='Taylor Swift', duration=20, volume=3)]", "unknown parameter 'volume'"),
        ("[spotify.play(artist='Taylor Swift', duration='20')]", 'duration="20" is a str, expected integer'),
        ("[spotify.play(artist='Taylor Swift', duration=True)]", "a boolean, expected integer"),
        ("[spotify.play(artist='Taylor Swift', duration=20, quality='medium')]", "not one of ['low', 'high']"),
        ("[spotify.play(artist='Taylor Swift', duration=20, tags=[1])]", "item 1 is a int, expected string"),
    ],
)
def test_schema_faults_are_named(answer: str, needle: str) -> None:
    assert needle in failed(answer)["tool_call_schema"]


def test_openai_style_specs_are_read() -> None:
    assert (
        failed(
            '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}',
            "What is the weather in Paris?",
            [OPENAI_TOOL],
        )
        == {}
    )
    assert (
        "not one of"
        in failed(
            '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "kelvin"}}',
            "What is the weather in Paris?",
            [OPENAI_TOOL],
        )["tool_call_schema"]
    )


def test_call_when_no_tool_fits_is_flagged() -> None:
    reasons = failed(
        "[spotify.play(artist='triangle', duration=10)]", "Calculate the area of a triangle with base 10 and height 5."
    )
    assert "no offered tool fits" in reasons["tool_relevance"]


def test_declining_is_right_when_no_tool_fits_and_wrong_when_one_does() -> None:
    assert failed("None of the functions can do this.", "Calculate the area of a triangle with base 10.") == {}
    assert "no call made" in failed("I cannot do that.")["tool_relevance"]


@pytest.mark.parametrize(
    "answer", ["[spotify.play(artist='Taylor", '{"name": "spotify.play", "arguments": 3}', "spotify.play(*args)"]
)
def test_malformed_calls_are_rejected_with_a_reason(answer: str) -> None:
    reasons = failed(answer)
    assert reasons and all(reasons.values())


def test_argument_grounding_is_measured() -> None:
    a = tc.analyse(QUESTION, "[spotify.play(artist='Taylor Swift', duration=25)]", None, [BFCL_TOOL])
    assert a.ungrounded_numbers == 1 and a.unused_question_numbers == 1 and a.values_grounded == 0.5
