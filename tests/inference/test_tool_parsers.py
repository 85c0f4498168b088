"""Reading tool calls back out of what a model wrote."""

from __future__ import annotations

import json

from inference.tool_parsers import tool_call_format

HERMES = tool_call_format("hermes")


def test_calls_are_read_and_content_around_them_is_kept() -> None:
    text = (
        'Checking.\n<tool_call>\n{"name": "a", "arguments": {"x": [1, 2]}}\n</tool_call>\n'
        '<tool_call>{"name": "b", "arguments": {}}</tool_call>'
    )
    content, calls = HERMES.parse(text)
    assert content == "Checking."
    assert [c["name"] for c in calls] == ["a", "b"]
    assert json.loads(calls[0]["arguments"]) == {"x": [1, 2]}
    assert calls[1]["arguments"] == "{}"


def test_a_block_that_does_not_parse_stays_content() -> None:
    text = "<tool_call>{not json}</tool_call>"
    assert HERMES.parse(text) == (text, [])
    missing_name = '<tool_call>{"arguments": {}}</tool_call>'
    assert HERMES.parse(missing_name) == (missing_name, [])


def test_text_without_calls_is_untouched() -> None:
    assert HERMES.parse("  plain answer ") == ("  plain answer ", [])
