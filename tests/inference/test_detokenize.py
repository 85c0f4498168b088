"""Incremental detokenizing and stop strings, on a byte-per-token decoder."""

from __future__ import annotations

from inference.detokenize import TextStream


def decode(ids: list[int]) -> str:
    return bytes(ids).decode("utf-8", errors="replace")


def run(text: str, stop: list[str]) -> tuple[list[str], TextStream]:
    deltas: list[str] = []
    stream = TextStream(decode, stop, deltas.append)
    for byte in text.encode():
        stream.add(byte)
        if stream.stopped:
            break
    stream.finish()
    return deltas, stream


def test_multibyte_characters_are_never_split() -> None:
    deltas, stream = run("a日本🙂b", [])
    assert "".join(deltas) == "a日本🙂b"
    assert "\ufffd" not in "".join(deltas)
    assert stream.text == "a日本🙂b"


def test_stop_string_is_cut_and_never_sent_even_across_deltas() -> None:
    deltas, stream = run("hello STOP world", ["STOP"])
    assert "".join(deltas) == "hello "
    assert stream.stopped


def test_the_earliest_of_several_stop_strings_wins() -> None:
    deltas, _ = run("one two three", ["three", "two"])
    assert "".join(deltas) == "one "


def test_held_back_text_is_released_when_it_is_not_a_stop() -> None:
    deltas, stream = run("abcSTOxyz", ["STOP"])
    assert "".join(deltas) == "abcSTOxyz"
    assert not stream.stopped


def test_text_after_the_divert_marker_is_kept_back() -> None:
    deltas: list[str] = []
    stream = TextStream(decode, [], deltas.append, divert="<tool_call>")
    for byte in b'Let me look.<tool_call>{"name": "f"}</tool_call>':
        stream.add(byte)
    stream.finish()
    assert "".join(deltas) == "Let me look."
    assert stream.diverted and stream.unsent == '<tool_call>{"name": "f"}</tool_call>'
