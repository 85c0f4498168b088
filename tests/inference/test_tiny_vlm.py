"""The shipped visiongate/tiny-vlm: its files match the manifest, its recipe is reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import ImageChops

from inference import scenes, tiny_vlm, train


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((tiny_vlm.default_path() / tiny_vlm.MANIFEST).read_text())


def test_the_shipped_files_match_the_manifest(manifest: dict) -> None:
    assert manifest["model"] == tiny_vlm.MODEL_ID
    assert manifest["recipe_version"] == scenes.RECIPE_VERSION
    assert isinstance(manifest["seed"], int)
    shipped = tiny_vlm.file_checksums(tiny_vlm.default_path())
    assert shipped == manifest["files"]
    assert "model.safetensors" in shipped and "tokenizer.json" in shipped


def test_the_weights_are_small_enough_to_ship() -> None:
    total = sum(p.stat().st_size for p in tiny_vlm.default_path().iterdir())
    assert total < 20 * 1024 * 1024


def test_written_in_hugging_face_format() -> None:
    directory = tiny_vlm.default_path()
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "llava"
    assert config["vision_config"]["model_type"] == "clip_vision_model"
    assert config["text_config"]["model_type"] == "llama"
    assert (directory / "processor_config.json").exists()
    assert (directory / "VISIONGATE_MODEL_ID").read_text().strip() == tiny_vlm.MODEL_ID


def test_training_is_deterministic_from_its_seed(tmp_path: Path) -> None:
    for name in ("a", "b"):
        train.train(tmp_path / name, seed=7, steps=2, batch=2, vision_steps=2)
    first, second = (tiny_vlm.file_checksums(tmp_path / name) for name in ("a", "b"))
    assert first == second
    train.train(tmp_path / "c", seed=8, steps=2, batch=2, vision_steps=2)
    other = tiny_vlm.file_checksums(tmp_path / "c")
    assert other["model.safetensors"] != first["model.safetensors"]


def test_scenes_are_drawn_the_same_from_a_seed() -> None:
    one, two = scenes.Scenes(3), scenes.Scenes(3)
    for _ in range(20):
        a, b = one.sample(), two.sample()
        assert (a.messages, a.answer, a.tools) == (b.messages, b.answer, b.tools)
        for x, y in zip(a.images + a.frames, b.images + b.frames, strict=True):
            assert ImageChops.difference(x.draw(), y.draw()).getbbox() is None


def test_training_prompts_are_what_the_processor_makes() -> None:
    """The training encodes a chat exactly as serving does (images expanded, no drift)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_vlm.default_path())
    tokenizer = processor.tokenizer
    source = scenes.Scenes(11)
    for task in ("colour", "multi", "tool", "ramble"):
        sample = source.of(task)
        ours = tokenizer(train.render_prompt(tokenizer, sample), add_special_tokens=False)
        theirs = processor.apply_chat_template(
            sample.messages,
            tools=sample.tools,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            processor_kwargs={"images": [s.draw() for s in sample.images] or None},
        )
        assert ours["input_ids"] == list(theirs["input_ids"][0]), task


def test_tokenizer_round_trips_any_utf8_and_knows_the_specials() -> None:
    tokenizer = tiny_vlm.load_tokenizer()
    text = "héllo 世界 🙂\n\t\x00 <b>&amp; ünïcödé"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    for special in [*tiny_vlm.SPECIAL_TOKENS, *tiny_vlm.ADDED_TOKENS]:
        assert len(tokenizer(special)["input_ids"]) == 1, special
    # The synthetic world's words are one token each: a forced tool call fits in 64 tokens.
    for word in (*scenes.SHAPES, *scenes.COLOURS):
        assert len(tokenizer(word)["input_ids"]) == 1, word


def test_a_pictures_label_is_one_token_whatever_comes_before_it() -> None:
    """The label "Picture 2: " is one token right before the picture's own, so the model can
    tell the pictures apart, and name them in its answer with the same token."""
    tokenizer = tiny_vlm.load_tokenizer()
    for before in ("", "Which image is red?", "blue shape?", "Compare ", "\n"):
        for number in range(1, scenes.MAX_FRAMES + 1):
            label = f"Picture {number}: "
            tokens = tokenizer.tokenize(f"{before}{label}<image>")
            assert tokenizer.convert_tokens_to_string(tokens[-2:-1]) == label, (before, tokens)


def test_the_match_and_asked_probes_read_each_named_picture() -> None:
    """At each colour or shape a multi-image answer names, the probes learn whether that
    picture is the one asked about and what it is compared against."""
    tokenizer = tiny_vlm.load_tokenizer()
    source = scenes.Scenes(5)
    kinds = set()
    for _ in range(40):
        sample = source.of("multi")
        answer = train.answer_ids(tokenizer, sample)
        named = train.named_pictures(tokenizer, sample, answer)
        words = [tokenizer.decode([answer[place]]) for place, _, _ in named]
        shown = [
            scene.shape if word in scenes.SHAPES else scene.colour
            for scene, word in zip(sample.images, words, strict=False)
        ]
        assert words == shown, sample.answer
        matches, asked = [m for _, m, _ in named], [a for _, _, a in named]
        if "same" in sample.truth:
            kinds.add("same")
            assert matches == [-100, int(sample.truth["same"])], sample.answer
            assert asked == [-100, train.ATTRIBUTES.index(words[0])], sample.answer
        else:
            kinds.add("which")
            assert len(named) == sample.truth["index"] + 1, sample.answer
            assert matches == [0] * (len(named) - 1) + [1], sample.answer
            assert asked == [train.ATTRIBUTES.index(words[-1])] * len(named), sample.answer
    assert kinds == {"same", "which"}
    assert train.named_pictures(tokenizer, source.of("colour"), [1, 2]) == []


def test_an_orange_shape_is_an_orange_one() -> None:
    orange = scenes.Scene(shape="circle", colour="orange", count=1, background="white")
    assert scenes.shape_phrase(orange) == "an orange circle"
