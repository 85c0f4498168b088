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
from typing import Any, cast

import torch
from PIL import Image

from inference import scenes, tiny_vlm
from inference.chat_format import ADDED_TOKENS
from inference.scenes import Sample, Scene, Scenes

DEFAULT_SEED = 0
# Stage 1: the vision tower and projector alone, on the probes, VISION_BATCH images a step.
VISION_STEPS = 2500
VISION_BATCH = 32
# Stage 2: the whole model on the answers (and the probes), BATCH samples a step.
STEPS = 3000
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
    image = scene.draw(rng.choice((64, 96, 96, 160, 256)))
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
        text = render_prompt(template_only, sample) + sample.answer
        # The tags are added tokens: learnt as merges too, plain text would make them.
        for tag in ("<image>", *ADDED_TOKENS):
            text = text.replace(tag, "")
        texts.append(text)
    return texts


def _whitespace_tokenizer() -> Any:
    from tokenizers import Tokenizer, models

    return Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))


# What the probes read from each image's tokens: from the CLS token the scene's attributes
# (-100 where one does not apply: a position when there are several shapes), and from each
# patch what its grid cell holds (nothing or a shape) and, when it holds one, its colour
# and which cell it is.
SCENE_LABELS = {
    "colour": len(scenes.COLOURS),
    "shape": len(scenes.SHAPES),
    "count": 4,
    "background": len(scenes.BACKGROUNDS),
    "position": len(scenes.POSITIONS),
}
PROBE_WEIGHT = 1.0
# The language model's layer whose image tokens the picture probe reads: by then each image
# token should say which picture it belongs to ("Picture 2: " comes right before it).
PICTURE_LAYER = 1
PICTURES = max(scenes.MAX_IMAGES, scenes.MAX_FRAMES)
PICTURE_WEIGHT = 1.0
# The language model's layer whose hidden state, at each picture a multi-image answer names
# ("Picture 2: red"), the match probe reads: is this the picture asked about?
MATCH_LAYER = 2
MATCH_WEIGHT = 5.0
# The same layer and places, read by the asked probe: which colour or shape the answer
# compares the named one against (the question's, or the first picture's when asked whether
# two are the same colour). It is what the match probe's comparison needs from elsewhere in
# the text; taught only through the match, it was learnt in some draws only, suddenly.
ASKED_LAYER = MATCH_LAYER
ASKED_WEIGHT = 1.0
ATTRIBUTES = (*scenes.COLOURS, *scenes.SHAPES)
# The weight in the answer loss of the token after each named picture's "," (", so the
# second." or ", Picture 3: "), the one decision a multi-image answer makes; 1 for the rest.
DECISION_WEIGHT = 5.0
# Where a shape is is the slowest thing to learn (a patch's position is a small part of what
# it carries), so the probes that need it weigh more.
PROBE_WEIGHTS = {"position": 3.0, "cell place": 3.0}


def scene_targets(scene: Scene) -> list[int]:
    """The CLS probes' labels for one image, in SCENE_LABELS order."""
    positions = list(scenes.POSITIONS)
    return [
        list(scenes.COLOURS).index(scene.colour),
        scenes.SHAPES.index(scene.shape),
        scene.count - 1,
        list(scenes.BACKGROUNDS).index(scene.background),
        positions.index(scene.position) if scene.position is not None else -100,
    ]


def cell_targets(scene: Scene) -> tuple[list[int], list[int], list[int]]:
    """Per patch, row by row: 0 for an empty cell or 1 + the shape; the colour or -100; and
    0 for an empty cell or 1 + the cell's own index.

    The last makes each patch say "something is here, and here is cell k" in one feature,
    which is what an average over the patches (the CLS token's, or a language model's
    attention) needs to tell where a shape is.
    """
    grid = tiny_vlm.GRID
    shapes, colours, places = [0] * grid * grid, [-100] * grid * grid, [0] * grid * grid
    for col, row in scene.cells:
        cell = row * grid + col
        shapes[cell] = 1 + scenes.SHAPES.index(scene.shape)
        colours[cell] = list(scenes.COLOURS).index(scene.colour)
        places[cell] = 1 + cell
    return shapes, colours, places


class Probes(torch.nn.Module):
    """Linear read-outs of the image tokens the language model sees, trained beside it.

    They give the vision tower a direct signal (what colour, which shape, how many, where)
    from the first step, instead of one that must first find its way back through a
    language model that has not yet learnt to look. Three more read the language model's
    hidden states: which picture an image token belongs to (``picture``), what a picture a
    multi-image answer names is compared against (``asked``), and whether it is the one
    asked about (``match``). They are not part of the checkpoint.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.scene = torch.nn.ModuleDict(
            {name: torch.nn.Linear(width, n) for name, n in SCENE_LABELS.items()}
        )
        self.cell_shape = torch.nn.Linear(width, 1 + len(scenes.SHAPES))
        self.cell_colour = torch.nn.Linear(width, len(scenes.COLOURS))
        self.cell_place = torch.nn.Linear(width, 1 + tiny_vlm.GRID**2)
        self.picture = torch.nn.Linear(width, PICTURES)
        self.match = torch.nn.Linear(width, 2)
        self.asked = torch.nn.Linear(width, len(ATTRIBUTES))

    def loss(self, features: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """The probes' weighted mean cross-entropy on ``features`` (images × (1 + cells) × width).

        They read the features layer-normalised: what they must learn is what the tokens
        say, not how loudly.
        """
        ce = torch.nn.functional.cross_entropy
        features = torch.nn.functional.layer_norm(features, features.shape[-1:])
        cls, cells = features[:, 0], features[:, 1:].flatten(0, 1)
        terms = {}
        for i, (name, head) in enumerate(self.scene.items()):
            labels = targets["scene"][:, i]
            if (labels != -100).any():
                terms[name] = ce(head(cls), labels, ignore_index=-100)
        terms["cell shape"] = ce(self.cell_shape(cells), targets["cell_shape"].flatten())
        colours = targets["cell_colour"].flatten()
        terms["cell colour"] = ce(self.cell_colour(cells), colours, ignore_index=-100)
        terms["cell place"] = ce(self.cell_place(cells), targets["cell_place"].flatten())
        weights = [PROBE_WEIGHTS.get(name, 1.0) for name in terms]
        total = sum(w * t for w, t in zip(weights, terms.values(), strict=True))
        return cast(torch.Tensor, total) / sum(weights)

    def picture_loss(self, hidden: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of reading each image token's picture number (from 0) from the
        language model's hidden states at PICTURE_LAYER (images × tokens × width).

        Naming what picture k shows means finding picture k's tokens; this makes them say
        which picture they are from the first steps, instead of only once some answer
        already looks at them.
        """
        hidden = torch.nn.functional.layer_norm(hidden, hidden.shape[-1:])
        logits = self.picture(hidden).flatten(0, 1)
        targets = numbers.repeat_interleave(hidden.shape[1])
        return torch.nn.functional.cross_entropy(logits, targets)


def named_pictures(tokenizer: Any, sample: Sample, answer: list[int]) -> list[tuple[int, int, int]]:
    """The match and asked probes' places and labels in a multi-image answer.

    The places are where the answer names a picture's colour or shape (the token before
    each ","). The match label is 1 for the picture asked about and 0 for the others, or,
    asked whether two are the same colour, -100 at the first and whether they are at the
    second. The asked label is the ATTRIBUTES index of what the named one is compared
    against: the colour or shape asked about (what the last picture named shows), or the
    first picture's colour at the second of a "same" question (-100 at the first).
    The answer's one decision, going on to the next picture or saying which it is, comes
    right after: a model that cannot tell there whether the picture it just named is the
    one asked about always stops at the first (issue 14's retrains without the match probe
    were right about half of two-image questions), and nothing else asks for that comparison.
    """
    if sample.task != "multi":
        return []
    comma = tokenizer.convert_tokens_to_ids(",")
    named = [i - 1 for i, token in enumerate(answer) if token == comma]
    attributes = tokenizer.convert_tokens_to_ids(list(ATTRIBUTES))

    def attribute(place: int) -> int:
        token = answer[place]
        return attributes.index(token) if token in attributes else -100

    if "same" in sample.truth:
        first, second = named[:2]
        return [(first, -100, -100), (second, int(sample.truth["same"]), attribute(first))]
    asked = attribute(named[-1])
    return [(place, int(k == len(named) - 1), asked) for k, place in enumerate(named)]


def probe_targets(pictured: list[Scene]) -> dict[str, torch.Tensor]:
    """The probes' labels for the images of a batch, in order."""
    cells = [cell_targets(scene) for scene in pictured]
    return {
        "scene": torch.tensor([scene_targets(scene) for scene in pictured]),
        "cell_shape": torch.tensor([shape for shape, _, _ in cells]),
        "cell_colour": torch.tensor([colour for _, colour, _ in cells]),
        "cell_place": torch.tensor([place for _, _, place in cells]),
    }


def image_features(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    """The image tokens the language model sees (images × (1 + cells) × width)."""
    return torch.stack(
        model.get_image_features(
            pixel_values=pixels,
            vision_feature_layer=model.config.vision_feature_layer,
            vision_feature_select_strategy=model.config.vision_feature_select_strategy,
        ).pooler_output
    )


def pretrain_vision(model: Any, probes: Probes, processor: Any, seed: int, steps: int) -> None:
    """Stage 1: the vision tower and projector learn to see, read out by the probes alone.

    Cheap (no language model runs), and it means the second stage starts from image tokens
    that already say what each cell holds, instead of noise the language model learns to
    ignore.
    """
    source, rng = Scenes(seed + 2), random.Random(seed + 3)
    vision = [
        *model.model.vision_tower.parameters(),
        *model.model.multi_modal_projector.parameters(),
        *probes.parameters(),
    ]
    optimizer = torch.optim.AdamW(vision, lr=LEARNING_RATE, weight_decay=0.01)
    for step in range(steps):
        pictured = [source.scene() for _ in range(VISION_BATCH)]
        images = [picture(scene, rng) for scene in pictured]
        pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
        loss = probes.loss(image_features(model, pixels), probe_targets(pictured))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vision, 1.0)
        optimizer.step()
        if step % 250 == 0 or step == steps - 1:
            print(f"vision {step:5d}  probes {loss.item():.4f}", flush=True)


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
            pictured: list[Scene] = []
            numbers: list[int] = []
            matches: list[tuple[int, int, int, int]] = []
            for row, (sample, prompt_ids, answer) in enumerate(chunk):
                full = prompt_ids + answer
                ids[row, : len(full)] = torch.tensor(full)
                labels[row, len(prompt_ids) : len(full)] = torch.tensor(answer)
                mask[row, : len(full)] = 1
                pictured += [*sample.images, *sample.frames]
                numbers += range(len(sample.images) + len(sample.frames))
                for place, label, asked in named_pictures(tokenizer, sample, answer):
                    matches.append((row, len(prompt_ids) + place, label, asked))
            inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "labels": labels}
            inputs["matches"] = torch.tensor(matches, dtype=torch.long).view(-1, 4)
            if pictured:
                images = [picture(scene, rng) for scene in pictured]
                pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
                inputs["pixel_values"] = pixels
                inputs["probes"] = {**probe_targets(pictured), "picture": torch.tensor(numbers)}
            yield inputs


def losses(model: Any, probes: Probes, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The answer loss and the probes' loss of one batch.

    The answer loss is the cross-entropy on the answer tokens, averaged per sample and then
    over the batch, so a long rambling answer weighs no more than a one-word one. The image
    tokens are computed once, as the model computes them, and fed both to the language
    model (in place of the ``<image>`` placeholders) and to the probes.
    """
    ids = inputs["input_ids"]
    embeds = model.get_input_embeddings()(ids)
    places = ids == model.config.image_token_id
    features = None
    if "pixel_values" in inputs:
        features = image_features(model, inputs["pixel_values"])
        embeds = embeds.masked_scatter(
            places.unsqueeze(-1), features.reshape(-1, features.shape[-1])
        )
    out = model(
        inputs_embeds=embeds,
        attention_mask=inputs["attention_mask"],
        output_hidden_states=features is not None,
    )
    probe_loss = torch.zeros(())
    if features is not None:
        hidden = out.hidden_states[PICTURE_LAYER][places].view(features.shape)
        probe_loss = probes.loss(features, inputs["probes"]) + PICTURE_WEIGHT * (
            probes.picture_loss(hidden, inputs["probes"]["picture"])
        )
    rows, columns, labels, asked = inputs["matches"].unbind(1)
    if len(rows):  # multi-image answers, which always come with pictures
        ce = torch.nn.functional.cross_entropy
        for head, layer, targets, weight in (
            (probes.match, MATCH_LAYER, labels, MATCH_WEIGHT),
            (probes.asked, ASKED_LAYER, asked, ASKED_WEIGHT),
        ):
            named = out.hidden_states[layer][rows, columns]
            named = torch.nn.functional.layer_norm(named, named.shape[-1:])
            probe_loss = probe_loss + weight * ce(head(named), targets, ignore_index=-100)
    logits = out.logits[:, :-1]
    targets = inputs["labels"][:, 1:]
    token_losses = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view(targets.shape)
    counted = (targets != -100).float()
    counted[rows, columns + 1] = DECISION_WEIGHT  # targets[i] is the token at i + 1
    answer_loss = ((token_losses * counted).sum(1) / counted.sum(1).clamp(min=1)).mean()
    return answer_loss, probe_loss


def train(
    out: Path,
    seed: int,
    steps: int,
    batch: int,
    stop_after: int | None = None,
    vision_steps: int = VISION_STEPS,
) -> dict[str, Any]:
    """Train from ``seed`` and save to ``out``; returns the recipe written to the manifest.

    ``vision_steps`` of stage 1, then ``steps`` of stage 2, which set its learning-rate
    schedule; ``stop_after`` ends stage 2 early (the shipped model's manifest says where),
    saving what a full run saves at that step.
    """
    torch.manual_seed(seed)
    torch.set_num_threads(THREADS)  # one thread: reproducible, and cheaper on a busy machine
    started, cpu_started = time.monotonic(), _cpu_seconds()
    tokenizer = tiny_vlm.train_tokenizer(corpus(seed + 100))
    processor = tiny_vlm.new_processor(tokenizer)
    model = tiny_vlm.new_model(tokenizer, seed)
    model.train()
    probes = Probes(model.config.text_config.hidden_size)
    pretrain_vision(model, probes, processor, seed, vision_steps)
    named = [*model.named_parameters(), *probes.named_parameters(prefix="probes")]
    decay = [p for n, p in named if p.dim() >= 2 and "embed" not in n]
    rest = [p for n, p in named if not (p.dim() >= 2 and "embed" not in n)]
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
    smoothed = [0.0, 0.0]
    last = min(steps, stop_after or steps)
    recipe: dict[str, Any] = {}
    for step in range(last):
        answer_loss, probe_loss = losses(model, probes, next(data))
        optimizer.zero_grad()
        (answer_loss + PROBE_WEIGHT * probe_loss).backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        optimizer.step()
        scheduler.step()
        for i, value in enumerate((answer_loss.item(), probe_loss.item())):
            smoothed[i] = value if step == 0 else 0.95 * smoothed[i] + 0.05 * value
        if step % 50 == 0 or step == steps - 1:
            wall, cpu = time.monotonic() - started, _cpu_seconds() - cpu_started
            line = (
                f"step {step:5d}  loss {smoothed[0]:.4f}  probes {smoothed[1]:.4f}"
                f"  wall {wall:7.1f}s  cpu {cpu:7.1f}s"
            )
            print(line, flush=True)
        if (step + 1) % SAVE_EVERY == 0 or step == last - 1:
            recipe = {
                "seed": seed,
                "recipe_version": scenes.RECIPE_VERSION,
                "vision_steps": vision_steps,
                "vision_batch": VISION_BATCH,
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
    parser.add_argument("--vision-steps", type=int, default=VISION_STEPS)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--stop-after", type=int, default=STOP_AFTER)
    args = parser.parse_args()
    recipe = train(args.out, args.seed, args.steps, args.batch, args.stop_after, args.vision_steps)
    print(f"wrote {args.out}: {recipe}")


if __name__ == "__main__":
    main()
