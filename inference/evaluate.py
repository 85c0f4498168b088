"""Evaluate a checkpoint on held-out scenes: ``python -m inference.evaluate`` (``make eval``).

Runs the engine the server runs (:class:`TransformersEngine`, guided decoding included) on
scenes drawn from seeds the training never used, and prints accuracy per task against the
issue's targets, then tokens/s of one stream.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from inference import tiny_vlm
from inference.contract import GenerateRequest as Request
from inference.contract import Guide, ImagePart, Message, TextPart, VideoPart
from inference.engines.base import Hooks, Media
from inference.engines.transformers_engine import TransformersEngine
from inference.media import decode_media
from inference.scenes import COLOURS, POSITIONS, SHAPES, Sample, Scene, Scenes

# Seeds of held-out scenes: training draws from its own seed (0 by default) only.
HELD_OUT_SEED = 1_000_003
TARGETS = {
    "colour": 0.97,
    "shape": 0.95,
    "count": 0.90,
    "position": None,
    "describe": None,
    "multi": 0.95,
    "multi, 2 images": 0.95,
    "multi, 3-5 images": None,
    "picture": None,
    "video": 0.90,
    "json valid": 1.0,
    "json correct": 0.90,
    "tool valid": 1.0,
    "tool correct": 0.90,
}
GUIDED_BUDGET = 64
# Enough for the longest plain answer: five pictures named before the one asked about.
TEXT_BUDGET = 48
SAMPLING_SEEDS = 20


@dataclass
class Answer:
    """What one generation returned."""

    text: str
    finish_reason: str
    completion_tokens: int
    tool_calls: list[dict[str, Any]]
    seconds: float


def png(scene: Scene, size: int = 96) -> bytes:
    """A scene encoded as a client would send it."""
    buffer = io.BytesIO()
    scene.draw(size).save(buffer, "PNG")
    return buffer.getvalue()


def request_of(sample: Sample, **options: Any) -> tuple[Request, Media]:
    """The contract's request and decoded media for a sample; a video goes as one video part."""
    images = [png(scene) for scene in sample.images]
    frames = [png(scene) for scene in sample.frames]
    media = decode_media(images, frames, [len(frames)] if frames else [])
    messages = []
    for message in sample.messages:
        content = message["content"]
        if isinstance(content, list):
            parts: list[Any] = []
            index = 0
            for part in content:
                if part["type"] == "text":
                    parts.append(TextPart(text=part["text"]))
                elif sample.frames:
                    if index == 0:
                        parts.append(VideoPart(index=0))
                    index += 1
                else:
                    parts.append(ImagePart(index=index))
                    index += 1
            content = parts
        messages.append(Message(role=message["role"], content=content))
    return Request(messages=messages, tools=sample.tools, **options), media


def run(engine: TransformersEngine, request: Request, media: Media) -> Answer:
    """Generate through the engine, as the Triton model does."""
    pieces: list[str] = []
    started = time.perf_counter()
    final = engine.generate(request, media, Hooks(emit=pieces.append, cancelled=lambda: False))
    return Answer(
        "".join(pieces),
        final.finish_reason,
        final.completion_tokens,
        final.tool_calls,
        time.perf_counter() - started,
    )


def _schema(facts: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JSON Schema over some of the facts (closed or free strings), and the expected object."""
    keys = rng.sample(list(facts), rng.randint(1, len(facts)))
    keys = [k for k in facts if k in keys]
    closed = {"shape": SHAPES, "color": tuple(COLOURS), "position": tuple(POSITIONS)}
    properties: dict[str, Any] = {}
    for key in keys:
        if key == "count":
            properties[key] = {"type": "integer"}
        elif key in closed and rng.random() < 0.5:
            properties[key] = {"type": "string", "enum": list(closed[key])}
        else:
            properties[key] = {"type": "string"}
    schema = {
        "type": "object",
        "properties": properties,
        "required": keys,
        "additionalProperties": False,
    }
    return schema, {k: facts[k] for k in keys}


def _guided_runs(engine: TransformersEngine, request: Request, media: Media) -> list[Answer]:
    """One greedy run and SAMPLING_SEEDS seeded runs at temperature 1."""
    runs = [run(engine, _with(request, temperature=0.0), media)]
    for seed in range(SAMPLING_SEEDS):
        runs.append(run(engine, _with(request, temperature=1.0, seed=seed), media))
    return runs


def _with(request: Request, **changes: Any) -> Request:
    import msgspec

    return msgspec.structs.replace(request, **changes)


def evaluate(engine: TransformersEngine, per_task: int, guided_scenes: int) -> dict[str, float]:
    """Accuracy per task on held-out scenes."""
    source = Scenes(HELD_OUT_SEED)
    scores: dict[str, float] = {}
    for task in ("colour", "shape", "count", "position", "describe", "multi", "picture", "video"):
        marks: dict[str, list[bool]] = {task: []}
        for _ in range(per_task):
            sample = source.of(task)
            request, media = request_of(sample, max_tokens=TEXT_BUDGET, temperature=0.0)
            answer = run(engine, request, media)
            right = answer.text.strip().lower() == sample.answer.lower()
            marks[task].append(right)
            if task == "multi":  # the target is for two images; more are harder
                images = "2 images" if len(sample.images) == 2 else "3-5 images"
                marks.setdefault(f"multi, {images}", []).append(right)
        for name in sorted(marks, key=list(TARGETS).index):
            scores[name] = sum(marks[name]) / len(marks[name])
    rng = random.Random(HELD_OUT_SEED)
    valid = correct = total = 0
    for _ in range(guided_scenes):
        sample = source.of("json")
        schema, expected = _schema(sample.truth, rng)
        guide = Guide(type="json_schema", json_schema=schema)
        request, media = request_of(sample, max_tokens=GUIDED_BUDGET, guide=guide)
        for answer in _guided_runs(engine, request, media):
            total += 1
            try:
                value = json.loads(answer.text)
                jsonschema.validate(value, schema)
            except (ValueError, jsonschema.ValidationError):
                continue
            if answer.finish_reason == "stop":
                valid += 1
                correct += value == expected
    scores["json valid"], scores["json correct"] = valid / total, correct / total
    valid = correct = total = 0
    for i in range(guided_scenes):
        sample = source.of("tool")
        assert sample.tools is not None
        for tool in sample.tools:  # strict tools, as OpenAI's SDK helpers write them
            tool["function"]["parameters"]["additionalProperties"] = False
        target = _called(sample)
        if i % 2:  # a named function, one of one or two tools
            guide = Guide(type="tool_call", tool_names=[target])
        else:  # "required" with the one tool
            guide = Guide(type="tool_call")
            sample.tools = [t for t in sample.tools if t["function"]["name"] == target]
        schema = next(
            t["function"]["parameters"] for t in sample.tools if t["function"]["name"] == target
        )
        request, media = request_of(
            sample, max_tokens=GUIDED_BUDGET, guide=guide, tool_choice="required"
        )
        for answer in _guided_runs(engine, request, media):
            total += 1
            if answer.finish_reason != "tool_calls" or len(answer.tool_calls) != 1:
                continue
            call = answer.tool_calls[0]
            try:
                arguments = json.loads(call["arguments"])
                jsonschema.validate(arguments, schema)
            except (ValueError, jsonschema.ValidationError):
                continue
            valid += 1
            correct += call["name"] == target and arguments == sample.truth
    scores["tool valid"], scores["tool correct"] = valid / total, correct / total
    return scores


def _called(sample: Sample) -> str:
    """The tool a tool-call sample's answer calls."""
    return str(json.loads(sample.answer.split("\n")[1])["name"])


def tokens_per_second(engine: TransformersEngine, images: int, repeats: int = 3) -> float:
    """Single-stream decode rate of a rambling answer of 256 tokens, with ``images`` images."""
    source = Scenes(HELD_OUT_SEED + images)
    scenes_ = [source.scene() for _ in range(images)]
    parts: list[dict[str, Any]] = [{"type": "text", "text": "Tell me a long story."}]
    sample = Sample(
        "ramble",
        [{"role": "user", "content": parts + [{"type": "image"}] * images}],
        "",
        scenes_,
    )
    request, media = request_of(sample, max_tokens=256, temperature=0.0)
    run(engine, request, media)  # warm-up
    tokens = seconds = 0.0
    for _ in range(repeats):
        answer = run(engine, request, media)
        tokens += answer.completion_tokens
        seconds += answer.seconds
    return tokens / seconds


def main() -> None:
    """Command line: print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--per-task", type=int, default=100)
    parser.add_argument("--guided-scenes", type=int, default=10)
    args = parser.parse_args()
    path = args.model or tiny_vlm.default_path()
    engine = TransformersEngine.load(str(path), device="cpu")
    started = time.monotonic()
    scores = evaluate(engine, args.per_task, args.guided_scenes)
    print(f"{'task':<18} {'accuracy':>9} {'target':>7}  met")
    for task, score in scores.items():
        target = TARGETS.get(task)
        met = "-" if target is None else "yes" if score >= target else "NO"
        shown = "-" if target is None else f"{target:.0%}"
        print(f"{task:<18} {score:>9.1%} {shown:>7}  {met}")
    print(f"(guided: {args.guided_scenes} scenes × (greedy + {SAMPLING_SEEDS} seeds at T=1),")
    print(f" {GUIDED_BUDGET} tokens max; text tasks: {args.per_task} scenes each, greedy)")
    print(f"evaluation took {time.monotonic() - started:.0f} s")
    for images in (0, 1, 5):
        rate = tokens_per_second(engine, images)
        print(f"tokens/s, 1 stream, {images} image(s): {rate:.0f}")


if __name__ == "__main__":
    main()
