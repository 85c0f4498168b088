"""The embedded default model: built from its seed, the same every time, a real checkpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.triton_process import EmbeddedTriton
from inference import tiny_model, tiny_vlm


def test_rebuilt_bit_identically_from_its_seed(
    tmp_path: Path, triton: EmbeddedTriton, cache_dir: Path
) -> None:
    first = tiny_model.ensure_built(seed=0, root=tmp_path / "a")
    second = tiny_model.ensure_built(seed=0, root=tmp_path / "b")
    other_seed = tiny_model.ensure_built(seed=1, root=tmp_path / "c")

    checksum = tiny_model.weights_checksum(first)
    assert checksum == tiny_model.weights_checksum(second)
    assert checksum != tiny_model.weights_checksum(other_seed)
    # The copy the Triton model built on first use in this session's cache is the same model.
    served = cache_dir / "models" / first.name
    assert tiny_model.weights_checksum(served) == checksum


def test_written_in_hugging_face_format(tmp_path: Path) -> None:
    directory = tiny_model.ensure_built(seed=0, root=tmp_path)
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "llava"
    assert config["vision_config"]["model_type"] == "clip_vision_model"
    assert config["text_config"]["model_type"] == "llama"
    assert (directory / "tokenizer.json").exists() and (
        directory / "processor_config.json"
    ).exists()
    assert (directory / "VISIONGATE_MODEL_ID").read_text().strip() == tiny_model.MODEL_ID


def test_tokenizer_round_trips_any_utf8_and_knows_the_specials() -> None:
    tokenizer = tiny_model.build_tokenizer()
    text = "héllo 世界 🙂\n\t\x00 <b>&amp; ünïcödé"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    for special in [*tiny_model.SPECIAL_TOKENS, *tiny_model.ADDED_TOKENS]:
        assert len(tokenizer(special)["input_ids"]) == 1, special


# tiny-vlm shares the noise model's chat template; both tokenizers must render it alike.
@pytest.mark.parametrize(
    "load", [tiny_model.build_tokenizer, tiny_vlm.load_tokenizer], ids=["noise", "tiny-vlm"]
)
def test_chat_template_renders_images_turns_and_tools(load: Callable[[], Any]) -> None:
    tokenizer = load()
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Compare"}, {"type": "image"}, {"type": "image"}],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "look", "arguments": '{"x": 1}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    tools = [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}]
    text = tokenizer.apply_chat_template(
        messages, tools=tools, add_generation_prompt=True, tokenize=False
    )
    assert text.count("<image>") == 2
    assert "Be brief." in text and '"name": "look"' in text
    assert '<tool_call>\n{"name": "look", "arguments": {"x": 1}}\n</tool_call>' in text
    assert "<tool_response>\n42\n</tool_response>" in text
    assert text.endswith("<|im_start|>assistant\n")
