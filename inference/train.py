"""Train visiongate/tiny-vlm on synthetic scenes: ``python -m inference.train`` (``make train``).

Deterministic from ``--seed``: the tokenizer is learnt on a corpus drawn from the seed, the
weights start from it, and every batch is drawn from it. Writes the checkpoint and its
manifest to ``--out`` (the shipped ``inference/weights/tiny-vlm/`` by default).
"""

from __future__ import annotations

import argparse
import io
import math
import random
import resource
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from inference import scenes, tiny_vlm
from inference.scenes import Sample, Scene, Scenes

DEFAULT_SEED = 0
STEPS = 1600
BATCH = 16
LEARNING_RATE = 1e-3
WARMUP = 100
CURRICULUM = 300
THREADS = 1
SAVE_EVERY = 300
# Stop early, after this many steps of the STEPS-step schedule; None (the shipped run): all.
STOP_AFTER: int | None = None


def render_prompt(tokenizer: Any, sample: Sample) -> str:
    """The chat template's text for a sample, each ``<image>`` expanded as the processor does."""
    text = tokenizer.apply_chat_template(
        sample.messages, tools=sample.tools, add_generation_prompt=True, tokenize=False
    )
    return str(text).replace("<image>", "<image>" * tiny_vlm.image_tokens())


def answer_ids(tokenizer: Any, sample: Sample) -> list[int]:
    """The tokens the model should write, with the end token unless the answer rambles on."""
    ids: list[int] = tokenizer(sample.answer, add_special_tokens=False)["input_ids"]
    return [*ids, tokenizer.eos_token_id] if sample.ends else ids


def picture(scene: Scene, rng: random.Random) -> Image.Image:
    """A scene drawn at a random size, sometimes JPEG-compressed, as a client might send it."""
    image = scene.draw(rng.choice((48, 96, 96, 160)))
    if rng.random() < 0.3:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=rng.randint(60, 95))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image


def corpus(seed: int, count: int = 4000) -> list[str]:
    """Texts the tokenizer is learnt on: rendered prompts and answers of the training mix."""
    from transformers import PreTrainedTokenizerFast

    template_only = PreTrainedTokenizerFast(
        tokenizer_object=_whitespace_tokenizer(), chat_template=tiny_vlm.CHAT_TEMPLATE
    )
    source = Scenes(seed)
    texts = []
    for _ in range(count):
        sample = source.sample()
        texts.append(render_prompt(template_only, sample).replace("<image>", "") + sample.answer)
    return texts


def _whitespace_tokenizer() -> Any:
    from tokenizers import Tokenizer, models

    return Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))


def batches(
    tokenizer: Any, processor: Any, seed: int, batch: int, groups: int = 4
) -> Any:  # an endless generator of model inputs
    """Batches of samples of similar length, drawn forever from ``seed``.

    The first CURRICULUM batches ask only about single pictures: the model learns to look
    before it learns the tasks built on looking.
    """
    source = Scenes(seed)
    rng = random.Random(seed + 1)
    pad = tokenizer.pad_token_id
    drawn = 0
    while True:
        only = scenes.SINGLE_TASKS if drawn < CURRICULUM * batch else scenes.TASKS
        pool = []
        for _ in range(batch * groups):
            drawn += 1
            sample = source.sample(only)
            prompt = tokenizer(render_prompt(tokenizer, sample), add_special_tokens=False)
            pool.append((sample, prompt["input_ids"], answer_ids(tokenizer, sample)))
        pool.sort(key=lambda item: len(item[1]) + len(item[2]))
        for g in range(groups):
            chunk = pool[g * batch : (g + 1) * batch]
            length = max(len(p) + len(a) for _, p, a in chunk)
            ids = torch.full((len(chunk), length), pad, dtype=torch.long)
            labels = torch.full((len(chunk), length), -100, dtype=torch.long)
            mask = torch.zeros((len(chunk), length), dtype=torch.long)
            images = []
            for row, (sample, prompt_ids, answer) in enumerate(chunk):
                full = prompt_ids + answer
                ids[row, : len(full)] = torch.tensor(full)
                labels[row, len(prompt_ids) : len(full)] = torch.tensor(answer)
                mask[row, : len(full)] = 1
                images += [picture(s, rng) for s in [*sample.images, *sample.frames]]
            inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "labels": labels}
            if images:
                pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
                inputs["pixel_values"] = pixels
            yield inputs


def per_sample_loss(model: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """Cross-entropy on the answer tokens, averaged per sample and then over the batch.

    So a long rambling answer weighs no more than a one-word one.
    """
    labels = inputs["labels"]
    logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits[:, :-1]
    targets = labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view(targets.shape)
    counted = (targets != -100).float()
    return ((losses * counted).sum(1) / counted.sum(1).clamp(min=1)).mean()


def train(
    out: Path, seed: int, steps: int, batch: int, stop_after: int | None = None
) -> dict[str, Any]:
    """Train from ``seed`` and save to ``out``; returns the recipe written to the manifest.

    ``steps`` sets the learning-rate schedule; ``stop_after`` ends the run early (the shipped
    model's manifest says where), saving what a full run saves at that step.
    """
    torch.manual_seed(seed)
    torch.set_num_threads(THREADS)  # one thread: reproducible, and cheaper on a busy machine
    started, cpu_started = time.monotonic(), _cpu_seconds()
    tokenizer = tiny_vlm.train_tokenizer(corpus(seed + 100))
    processor = tiny_vlm.new_processor(tokenizer)
    model = tiny_vlm.new_model(tokenizer, seed)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
        lr=LEARNING_RATE,
        betas=(0.9, 0.98),
    )

    def schedule(step: int) -> float:
        if step < WARMUP:
            return (step + 1) / WARMUP
        progress = (step - WARMUP) / max(1, steps - WARMUP)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    data = batches(tokenizer, processor, seed, batch)
    smoothed = None
    last = min(steps, stop_after or steps)
    recipe: dict[str, Any] = {}
    for step in range(last):
        inputs = next(data)
        loss = per_sample_loss(model, inputs)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        smoothed = loss.item() if smoothed is None else 0.95 * smoothed + 0.05 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            wall, cpu = time.monotonic() - started, _cpu_seconds() - cpu_started
            line = f"step {step:5d}  loss {smoothed:.4f}  wall {wall:7.1f}s  cpu {cpu:7.1f}s"
            print(line, flush=True)
        if (step + 1) % SAVE_EVERY == 0 or step == last - 1:
            recipe = {
                "seed": seed,
                "recipe_version": scenes.RECIPE_VERSION,
                "steps": steps,
                "steps_done": step + 1,
                "batch": batch,
                "torch_threads": torch.get_num_threads(),
                "train_wall_s": round(time.monotonic() - started, 1),
                "train_cpu_s": round(_cpu_seconds() - cpu_started, 1),
            }
            tiny_vlm.save(out, model.eval(), processor, recipe)
            model.train()
    return recipe


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    """Command line: train and write the checkpoint."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=tiny_vlm.SHIPPED)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--stop-after", type=int, default=STOP_AFTER)
    args = parser.parse_args()
    recipe = train(args.out, args.seed, args.steps, args.batch, args.stop_after)
    print(f"wrote {args.out}: {recipe}")


if __name__ == "__main__":
    main()
