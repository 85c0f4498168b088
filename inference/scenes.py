"""Synthetic scenes and what to say about them: the default model's whole world.

A scene is a few shapes of one colour on a plain background. :class:`Scenes` draws them
with Pillow and writes questions with their answers, deterministically from a seed: plain
text, JSON (what guided ``json_object`` / ``json_schema`` decoding makes), Hermes
``<tool_call>`` blocks when tools are in the prompt, questions about two to five images
(which one shows something; what one of them, named by number or place, shows),
about a video's frames, and a "ramble" family (prompts that are no question about a scene)
whose answers never end, so such prompts generate until ``max_tokens``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

# Bump when anything below changes what is drawn or said.
RECIPE_VERSION = 5

SHAPES = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 30),
    "green": (40, 170, 60),
    "cyan": (40, 200, 220),
    "blue": (40, 70, 220),
    "purple": (140, 50, 180),
    "pink": (245, 130, 200),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "black": (15, 15, 15),
}
# Where a single shape sits: cells of a 3 × 3 grid.
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (0, 0),
    "top right": (2, 0),
    "center": (1, 1),
    "bottom left": (0, 2),
    "bottom right": (2, 2),
}
NUMBERS = ("zero", "one", "two", "three", "four", "five")
ORDINALS = ("first", "second", "third", "fourth", "fifth")
MAX_IMAGES = 5
MAX_FRAMES = 6


@dataclass(frozen=True)
class Scene:
    """What one image shows."""

    shape: str
    colour: str
    count: int
    background: str
    position: str | None = None  # set when count is 1
    cells: tuple[tuple[int, int], ...] = ()
    jitter: int = 0  # seeds the small variations of size and placement

    def draw(self, size: int = 96) -> Image.Image:
        """The scene as an RGB image ``size`` pixels square."""
        rng = random.Random(self.jitter)
        shade = rng.randint(-12, 12)
        background = tuple(max(0, min(255, c + shade)) for c in BACKGROUNDS[self.background])
        image = Image.new("RGB", (size, size), background)
        draw = ImageDraw.Draw(image)
        cell = size / 3
        tint = tuple(max(0, min(255, c + rng.randint(-15, 15))) for c in COLOURS[self.colour])
        for col, row in self.cells:
            radius = cell * rng.uniform(0.30, 0.42) * (1.25 if self.count == 1 else 1.0)
            slack = cell / 2 - radius
            cx = (col + 0.5) * cell + rng.uniform(-slack, slack) * 0.6
            cy = (row + 0.5) * cell + rng.uniform(-slack, slack) * 0.6
            box = (cx - radius, cy - radius, cx + radius, cy + radius)
            if self.shape == "circle":
                draw.ellipse(box, fill=tint)
            elif self.shape == "square":
                side = radius * 0.88
                draw.rectangle((cx - side, cy - side, cx + side, cy + side), fill=tint)
            else:
                top = (cx, cy - radius)
                draw.polygon(
                    [top, (cx - radius, cy + radius * 0.8), (cx + radius, cy + radius * 0.8)],
                    fill=tint,
                )
        return image

    def facts(self) -> dict[str, Any]:
        """The scene's attributes as JSON answers name them."""
        facts: dict[str, Any] = {
            "shape": self.shape,
            "color": self.colour,
            "count": self.count,
            "background": self.background,
        }
        if self.position is not None:
            facts["position"] = self.position
        return facts


@dataclass
class Sample:
    """One training or evaluation example: a chat, its media, and the answer to learn.

    ``images`` are in the order their parts appear; ``frames`` (a video) come after any
    images, as the engine sends a video's frames. ``ends`` is False for a ramble, whose
    answer has no end token.
    """

    task: str
    messages: list[dict[str, Any]]
    answer: str
    images: list[Scene] = field(default_factory=list)
    frames: list[Scene] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    ends: bool = True
    truth: dict[str, Any] = field(default_factory=dict)


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def article(word: str) -> str:
    """``a blue`` or ``an orange``."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def shape_phrase(scene: Scene) -> str:
    """``a blue triangle``, ``an orange circle`` or ``three blue triangles``."""
    if scene.count == 1:
        return f"{article(scene.colour)} {scene.shape}"
    return f"{NUMBERS[scene.count]} {scene.colour} {scene.shape}s"


COLOUR_QUESTIONS = (
    "What colour is the shape?",
    "What color is the shape?",
    "What colour is it?",
    "What color is it?",
    "What colour is this?",
    "What color is this?",
    "Which colour are the shapes?",
    "What color are the shapes?",
)
SHAPE_QUESTIONS = (
    "What shape is this?",
    "What shape is it?",
    "Which shape do you see?",
    "What shapes are in the image?",
    "What kind of shape is in the picture?",
)
COUNT_QUESTIONS = (
    "How many shapes are there?",
    "How many shapes are in the image?",
    "How many objects do you see?",
    "Count the shapes.",
)
POSITION_QUESTIONS = (
    "Where is the shape?",
    "Where is it?",
    "Where is the shape in the image?",
    "In which part of the image is the shape?",
)
DESCRIBE_QUESTIONS = (
    "Describe the image.",
    "Describe the picture.",
    "Describe.",
    "What's in this image?",
    "What is in the image?",
    "What do you see?",
)
BACKGROUND_QUESTIONS = (
    "What colour is the background?",
    "What color is the background?",
)
# Not "Describe the image.": that asks for the plain answer (DESCRIBE_QUESTIONS), and with
# JSON mode on, guided decoding makes JSON of whatever is asked.
JSON_PROMPTS = (
    "Describe the image as JSON.",
    "Answer in JSON.",
    "Return JSON describing the scene.",
    "Give the shape, colour and count as JSON.",
    "What is in the image? Reply with a JSON object.",
)
TOOL_PROMPTS = (
    "Record what you see.",
    "Call the function for this image.",
    "Use the tool to log the scene.",
    "Save the shape in the image.",
    "Report the image with the tool.",
)
TOOL_NAMES = (
    "record_shape",
    "log_scene",
    "report_color",
    "save_count",
    "describe_object",
    "add_item",
    "store_result",
    "note_image",
    "classify",
    "submit",
)
TOOL_KEYS = {
    "shape": ("shape", "kind", "object"),
    "color": ("color", "colour"),
    "count": ("count", "number", "n"),
    "position": ("position", "location", "where"),
    "background": ("background",),
}
RAMBLE_PROMPTS = (
    "Tell me a long story.",
    "Tell me a story.",
    "Hi",
    "Hello",
    "Say hi",
    "Keep talking.",
    "Write something.",
    "Go on.",
    "Say something.",
)
RAMBLE_WORDS = (
    *SHAPES,
    *(f"{s}s" for s in SHAPES),
    *COLOURS,
    *NUMBERS[1:],
    *BACKGROUNDS,
    "and",
    "then",
    "the",
    "a",
    "on",
    "with",
    "next",
    "to",
    "one",
    "more",
    "again",
    "once",
    "there",
    "was",
    "were",
    "big",
    "small",
    "left",
    "right",
    "top",
    "bottom",
    "shape",
    "shapes",
    ",",
)


def label(index: int) -> str:
    """``Picture 3: ``: the chat template's label of the picture at ``index`` (from 0)."""
    return f"Picture {index + 1}: "


def picture_list(seen: list[str]) -> str:
    """``Picture 1: blue, Picture 2: red``: what each picture shows, by its label."""
    return ", ".join(label(i) + what for i, what in enumerate(seen))


SINGLE_TASKS = ("colour", "shape", "count", "position", "describe", "background")
MIX = (
    ("colour", 1.5),
    ("shape", 1.5),
    ("count", 1.5),
    ("position", 1.5),
    ("describe", 1.5),
    ("background", 0.5),
    ("multi", 8),
    ("picture", 1.5),
    ("video", 1.5),
    ("json", 4),
    ("tool", 4),
    ("ramble", 0.7),
)
TASKS = tuple(task for task, _ in MIX)


class Scenes:
    """Draws scenes and writes samples from one seeded random stream."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def scene(
        self,
        count: int | None = None,
        colour: str | None = None,
        shape: str | None = None,
        position: str | None = None,
    ) -> Scene:
        """A random scene; any attribute given is fixed."""
        rng = self.rng
        count = count or rng.choice((1, 1, 1, 2, 3, 4))
        if count == 1:
            position = position or rng.choice(tuple(POSITIONS))
            cells: tuple[tuple[int, int], ...] = (POSITIONS[position],)
        else:
            position = None
            grid = [(c, r) for r in range(3) for c in range(3)]
            cells = tuple(sorted(rng.sample(grid, count)))
        return Scene(
            shape=shape or rng.choice(SHAPES),
            colour=colour or rng.choice(tuple(COLOURS)),
            count=count,
            background=rng.choice(tuple(BACKGROUNDS)),
            position=position,
            cells=cells,
            jitter=rng.getrandbits(32),
        )

    def _user(self, text: str, images: int = 0, system: bool = True) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"type": "image"} for _ in range(images)]
        if self.rng.random() < 0.5:
            parts = [{"type": "text", "text": text}, *parts]
        else:
            parts = [*parts, {"type": "text", "text": text}]
        messages: list[dict[str, Any]] = []
        if system and self.rng.random() < 0.15:
            messages.append({"role": "system", "content": "You are a helpful assistant."})
        messages.append({"role": "user", "content": parts if images else text})
        return messages

    def single(self, task: str) -> Sample:
        """A question about one image: colour, shape, count, position, describe, background."""
        rng = self.rng
        scene = self.scene(count=1 if task == "position" else None)
        if task == "colour":
            question, answer = rng.choice(COLOUR_QUESTIONS), _sentence(scene.colour)
        elif task == "shape":
            question = rng.choice(SHAPE_QUESTIONS)
            answer = _sentence(
                f"a {scene.shape}" if scene.count == 1 else f"{NUMBERS[scene.count]} {scene.shape}s"
            )
        elif task == "count":
            question, answer = rng.choice(COUNT_QUESTIONS), _sentence(NUMBERS[scene.count])
        elif task == "position":
            question = rng.choice(POSITION_QUESTIONS)
            answer = _sentence(
                "in the center" if scene.position == "center" else f"{scene.position}"
            )
        elif task == "background":
            question, answer = rng.choice(BACKGROUND_QUESTIONS), _sentence(scene.background)
        else:
            question = rng.choice(DESCRIBE_QUESTIONS)
            answer = _sentence(f"{shape_phrase(scene)} on {scene.background}")
        return Sample(task, self._user(question, 1), answer, images=[scene], truth=scene.facts())

    def multi(self) -> Sample:
        """Two to five images: which one is a colour or a shape, or are two the same colour.

        The answer names the pictures in order, each by the label the chat template gives it
        ("Picture 2: "), with what it shows, until the one asked about, then says which it
        is: "Picture 1: blue, Picture 2: red, so the second." A small model cannot look up
        the one picture that shows something in one step; it can say what picture k shows
        (the label is one token, copied from right before the picture's own tokens) and
        whether that is what was asked.
        """
        rng = self.rng
        n = rng.choice((2, 2, 2, 3, 4, 5))
        kind = rng.choice(("colour", "colour", "shape", "same")) if n == 2 else "colour"
        if kind == "same":
            colours = [rng.choice(tuple(COLOURS))] * 2 if rng.random() < 0.5 else None
            colours = colours or rng.sample(tuple(COLOURS), 2)
            scenes = [self.scene(count=1, colour=c) for c in colours]
            question = rng.choice(
                ("Are the two shapes the same colour?", "Are they the same color?")
            )
            verdict = "yes" if colours[0] == colours[1] else "no"
            answer = f"{picture_list(colours)}, so {verdict}."
            truth: dict[str, Any] = {"same": verdict == "yes"}
            return Sample("multi", self._user(question, 2), answer, images=scenes, truth=truth)
        target = rng.randrange(n)
        if kind == "shape":
            shapes = rng.sample(SHAPES, 2)
            scenes = [self.scene(count=1, shape=shapes[0 if i == target else 1]) for i in range(2)]
            wanted = f"a {shapes[0]}"
            seen = [f"a {scene.shape}" for scene in scenes]
        else:
            colours = rng.sample(tuple(COLOURS), n)
            scenes = [self.scene(count=1, colour=c) for c in colours]
            wanted = colours[target]
            seen = colours
        if n == 2:
            subject = "shows " + wanted if kind == "shape" else "is " + wanted
            question = f"Which image {subject}, the first or the second?"
        else:
            question = rng.choice(
                (f"Which image is {wanted}?", f"Which image shows {article(wanted)} shape?")
            )
        answer = f"{picture_list(seen[: target + 1])}, so the {ORDINALS[target]}."
        truth = {"index": target}
        return Sample("multi", self._user(question, n), answer, images=scenes, truth=truth)

    def picture(self) -> Sample:
        """Two to five images and a question about one of them, by its number or its place.

        The answer names the picture by its label first ("Picture 3: purple."): writing the
        label is a lookup of the question's number or ordinal, and what follows a label is
        what the multi-image answers already copy from that picture's own tokens.
        """
        rng = self.rng
        n = rng.choice((2, 2, 3, 4, 5))
        scenes = [self.scene(count=1) for _ in range(n)]
        target = rng.randrange(n)
        which = rng.choice((f"picture {target + 1}", f"the {ORDINALS[target]} image"))
        if rng.random() < 0.5:
            question = rng.choice((f"What colour is {which}?", f"What color is {which}?"))
            answer = scenes[target].colour
        else:
            question = f"What shape is in {which}?"
            answer = f"a {scenes[target].shape}"
        truth = {"index": target, **scenes[target].facts()}
        answer = f"{label(target)}{answer}."
        return Sample("picture", self._user(question, n), answer, scenes, truth=truth)

    def video(self) -> Sample:
        """A video whose one shape changes colour: which colour comes first or last."""
        rng = self.rng
        colours = rng.sample(tuple(COLOURS), rng.choice((2, 3, 3, 4)))
        base = self.scene(count=1)
        frames: list[Scene] = []
        hold = rng.choice((1, 1, 2))
        for colour in colours:
            for _ in range(hold):
                frames.append(
                    Scene(
                        base.shape,
                        colour,
                        1,
                        base.background,
                        base.position,
                        base.cells,
                        rng.getrandbits(32),
                    )
                )
        frames = frames[:MAX_FRAMES]
        which = rng.choice(("first", "last"))
        colour = frames[0].colour if which == "first" else frames[-1].colour
        question = rng.choice(
            (
                f"Which colour comes {which}?",
                f"What color comes {which} in the video?",
                f"What colour is the shape {'at the start' if which == 'first' else 'at the end'}?",
            )
        )
        parts: list[dict[str, Any]] = [{"type": "text", "text": question}]
        parts += [{"type": "image"} for _ in frames]
        messages = [{"role": "user", "content": parts}]
        return Sample("video", messages, _sentence(colour), frames=frames, truth={"color": colour})

    def json_answer(self) -> Sample:
        """A JSON-mode answer: some of the scene's facts under some of their names."""
        rng = self.rng
        scene = self.scene()
        facts = scene.facts()
        keys = rng.sample(list(facts), rng.randint(1, len(facts)))
        if rng.random() < 0.6:  # the usual order
            keys = [k for k in facts if k in keys]
        answer = {}
        for key in keys:
            name = "colour" if key == "color" and rng.random() < 0.3 else key
            answer[name] = facts[key]
        text = json.dumps(answer, separators=(",", ":"))
        return Sample("json", self._user(rng.choice(JSON_PROMPTS), 1), text, [scene], truth=facts)

    def tool(self, name: str | None = None) -> tuple[dict[str, Any], list[str]]:
        """A random tool whose parameters are some of a scene's facts; and their fact keys."""
        rng = self.rng
        facts = ["shape", "color", "count", "position", "background"]
        chosen = rng.sample(facts, rng.randint(1, 3))
        chosen = [k for k in facts if k in chosen] if rng.random() < 0.6 else chosen
        properties: dict[str, Any] = {}
        keys = []
        for fact in chosen:
            key = rng.choice(TOOL_KEYS[fact])
            keys.append(f"{fact}:{key}")
            if fact == "count":
                properties[key] = {"type": "integer"}
            elif rng.random() < 0.5:
                values = {
                    "shape": SHAPES,
                    "color": tuple(COLOURS),
                    "position": tuple(POSITIONS),
                    "background": tuple(BACKGROUNDS),
                }[fact]
                properties[key] = {"type": "string", "enum": list(values)}
            else:
                properties[key] = {"type": "string"}
        tool = {
            "type": "function",
            "function": {
                "name": name or rng.choice(TOOL_NAMES),
                "description": rng.choice(
                    ("Record a shape.", "Log what the image shows.", "Save the scene.", "")
                ),
                "parameters": {
                    "type": "object",
                    "properties": properties,
                    "required": list(properties),
                },
            },
        }
        return tool, keys

    def tool_call(self) -> Sample:
        """Tools in the prompt and a request to use one: a Hermes ``<tool_call>`` block."""
        rng = self.rng
        names = rng.sample(TOOL_NAMES, rng.choice((1, 1, 2)))
        made = [self.tool(n) for n in names]
        pick = rng.randrange(len(made))
        tool, keys = made[pick]
        single = rng.random() < 0.5 or any(k.startswith("position:") for k in keys)
        scene = self.scene(count=1 if single else None)
        facts = scene.facts()
        arguments = {}
        for item in keys:
            fact, key = item.split(":")
            arguments[key] = facts[fact]
        call = {"name": tool["function"]["name"], "arguments": arguments}
        prompt = rng.choice(TOOL_PROMPTS)
        if len(made) > 1:
            prompt = f"Call {tool['function']['name']}."
        answer = f"<tool_call>\n{json.dumps(call, separators=(',', ':'))}\n</tool_call>"
        return Sample(
            "tool",
            self._user(prompt, 1),
            answer,
            images=[scene],
            tools=[t for t, _ in made],
            truth=arguments,
        )

    def ramble(self) -> Sample:
        """A prompt that asks no question about a scene; an answer that never ends."""
        rng = self.rng
        if rng.random() < 0.5:
            prompt = rng.choice(RAMBLE_PROMPTS)
        else:
            letters = "abcdefghijklmnopqrstuvwxyz      ,.?!0123456789"
            prompt = "".join(rng.choice(letters) for _ in range(rng.randint(1, 40))).strip() or "x"
        words = [rng.choice(RAMBLE_WORDS) for _ in range(rng.randint(60, 200))]
        text = " ".join(words).replace(" ,", ",")
        images = [self.scene() for _ in range(rng.choice((0, 0, 1, 2)))]
        return Sample("ramble", self._user(prompt, len(images)), text, images, ends=False)

    def sample(self, only: tuple[str, ...] = TASKS) -> Sample:
        """One sample of a task drawn by the training mix (of the tasks in ``only``)."""
        mix = [(task, weight) for task, weight in MIX if task in only]
        task = self.rng.choices([t for t, _ in mix], weights=[w for _, w in mix])[0]
        return self.of(task)

    def of(self, task: str) -> Sample:
        """One sample of ``task``."""
        if task in SINGLE_TASKS:
            return self.single(task)
        return {
            "multi": self.multi,
            "picture": self.picture,
            "video": self.video,
            "json": self.json_answer,
            "tool": self.tool_call,
            "ramble": self.ramble,
        }[task]()
