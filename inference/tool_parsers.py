"""Tool-call formats, per model family: how calls are written, and how to read them back."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ToolCallFormat:
    """Calls written as ``open`` + JSON ``{"name", "arguments"}`` + ``close``."""

    name: str
    open: str
    close: str

    def parse(self, text: str, cut_off: bool = False) -> tuple[str, list[dict[str, Any]]]:
        """Split text into its content and its calls ``{"name", "arguments": JSON string}``.

        A block that does not parse stays in the content, so nothing the model wrote is lost;
        but when generation was ``cut_off`` (out of tokens), the last block is dropped if it
        never closed: half a call is neither a call nor content.
        """
        if cut_off:
            at = text.rfind(self.open)
            if at >= 0 and self.close not in text[at:]:
                text = text[:at]
        pattern = re.compile(re.escape(self.open) + r"\s*(.*?)\s*" + re.escape(self.close), re.S)
        calls: list[dict[str, Any]] = []
        content: list[str] = []
        position = 0
        for match in pattern.finditer(text):
            call = _call(match.group(1))
            if call is None:
                continue
            content.append(text[position : match.start()])
            position = match.end()
            calls.append(call)
        content.append(text[position:])
        return "".join(content).strip() if calls else text, calls


def _call(body: str) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {"name": value["name"], "arguments": arguments}


# Qwen2/2.5-VL, Hermes, and the default model all write <tool_call>{...}</tool_call>.
FORMATS = {"hermes": ToolCallFormat("hermes", "<tool_call>", "</tool_call>")}


def tool_call_format(name: str) -> ToolCallFormat:
    """The format called ``name``."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(
            f"unknown tool-call format {name!r}; known: {', '.join(FORMATS)}"
        ) from None
