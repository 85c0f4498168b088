"""The default model's chat format: the template tiny-vlm ships with renders chats as documented.

The shipped checkpoint itself (files, manifest, recipe) is tests/inference/test_tiny_vlm.py.
"""

from __future__ import annotations

from inference import chat_format, tiny_vlm
from inference.engines.transformers_engine import TransformersEngine


def test_the_default_engine_loads_the_shipped_checkpoint() -> None:
    engine = TransformersEngine.load("", device="cpu")
    assert engine.capabilities.model == tiny_vlm.MODEL_ID == "visiongate/tiny-vlm"
    assert engine.capabilities.context_length == chat_format.CONTEXT_LENGTH
    assert engine.capabilities.vision and engine.capabilities.tools


def test_the_shipped_checkpoint_carries_the_chat_format() -> None:
    tokenizer = tiny_vlm.load_tokenizer()
    assert tokenizer.chat_template == chat_format.CHAT_TEMPLATE
    for special in [*chat_format.SPECIAL_TOKENS, *chat_format.ADDED_TOKENS]:
        assert len(tokenizer(special, add_special_tokens=False)["input_ids"]) == 1, special


def test_chat_template_renders_images_turns_and_tools() -> None:
    tokenizer = tiny_vlm.load_tokenizer()
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
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "And this?"}]},
    ]
    tools = [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}]
    text = tokenizer.apply_chat_template(
        messages,
        tools=tools,
        add_generation_prompt=True,
        tokenize=False,
        chat_template=chat_format.CHAT_TEMPLATE,
    )
    # Pictures are numbered across the whole chat, in the order they were sent.
    assert "ComparePicture 1: <image>Picture 2: <image>" in text
    assert "Picture 3: <image>And this?" in text
    assert text.count("<image>") == 3
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    assert '{"type": "function", "function": {"name": "look"' in text
    assert '<tool_call>\n{"name": "look", "arguments": {"x": 1}}\n</tool_call>' in text
    assert "<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
