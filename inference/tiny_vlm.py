"""visiongate/tiny-vlm: a miniature LLaVA trained on synthetic scenes, shipped as files.

It is a real ``LlavaForConditionalGeneration`` (a small CLIP vision tower, a small Llama
text model) trained by ``python -m inference.train`` on :mod:`inference.scenes`, with a
byte-level BPE tokenizer (learnt on the same data; any UTF-8 text still round-trips),
ChatML special tokens, and a chat template that handles several images per turn,
multi-turn chats and Hermes-style tools. The trained checkpoint ships in the package
(``inference/weights/tiny-vlm/``, Hugging Face layout) with a manifest of its recipe and the
SHA-256 of every file, and is loaded by the same code that loads any checkpoint. It is the
default model: what it can and cannot do is in docs/inference.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from inference.chat_format import ADDED_TOKENS, CHAT_TEMPLATE, CONTEXT_LENGTH, SPECIAL_TOKENS
from inference.scenes import COLOURS, SHAPES

MODEL_ID = "visiongate/tiny-vlm"
SHIPPED = Path(__file__).parent / "weights" / "tiny-vlm"
MANIFEST = "manifest.json"

IMAGE_SIZE = 96
# 32-pixel patches: a 3 × 3 grid, one patch for each cell a scene places its shapes in.
PATCH_SIZE = 32
GRID = IMAGE_SIZE // PATCH_SIZE
POSITION_STD = 1.0
VOCAB_SIZE = 4096
# Pieces no merge crosses: a picture's number ("Picture 2: ", one token, right before the
# image's own tokens, whatever text comes before it), runs of JSON punctuation, and the
# synthetic world's colour and shape words (the same token in a question as in an answer,
# so a model can tell that a picture shows what was asked about).
WORDS = "|".join((*COLOURS, *SHAPES))
ISOLATED = rf'Picture \d+: |[{{}}\[\]":,]+|\b(?:{WORDS})(?=s?\b)'


def train_tokenizer(corpus: Iterable[str], vocab_size: int = VOCAB_SIZE) -> Any:
    """A byte-level BPE tokenizer learnt on ``corpus``, plus the chat and image specials.

    Its alphabet is all 256 bytes, so any UTF-8 text round-trips; the merges make the
    synthetic world's words, phrases and JSON punctuation runs one token each. The corpus
    carries no ``<tool_call>`` tags (train.corpus): they are added tokens, and a merge that
    spelt one would let plain text become the control token.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    # JSON punctuation is split from the rest, so no token joins a key to its value or a
    # value to what follows it (guided decoding of any schema can close every string), while
    # prose merges across spaces (the tools preamble is a few tokens, not a few hundred).
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(ISOLATED), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer)
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=CONTEXT_LENGTH,
        chat_template=CHAT_TEMPLATE,
    )


def new_model(tokenizer: Any, seed: int) -> Any:
    """A freshly initialised model of the default's architecture, for ``tokenizer``."""
    import torch
    from transformers import (
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vision = CLIPVisionConfig(
        hidden_size=192,
        intermediate_size=768,
        num_hidden_layers=3,
        num_attention_heads=6,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=192,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=CONTEXT_LENGTH,
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=ids["<image>"],
        vision_feature_select_strategy="full",  # the CLS token too: the whole picture's summary
        vision_feature_layer=-1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
        # CLIP's usual 0.02 leaves a patch's position a hundredth of what it carries, too
        # little to learn where a shape is; as loud as the patch's content, it is learnt.
        embeddings = model.model.vision_tower.embeddings
        torch.nn.init.normal_(embeddings.position_embedding.weight, std=POSITION_STD)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )
    return model


def new_processor(tokenizer: Any) -> Any:
    """The processor: images resized to IMAGE_SIZE square (no crop: the edges count)."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    image_processor = CLIPImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=False,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=1,  # the CLS token, kept
        chat_template=CHAT_TEMPLATE,
    )


def image_tokens() -> int:
    """How many ``<image>`` tokens one image becomes: the CLS token and one per patch."""
    return 1 + GRID**2


def save(directory: Path, model: Any, processor: Any, recipe: dict[str, Any]) -> None:
    """Write a checkpoint in Hugging Face layout with its manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    (directory / "VISIONGATE_MODEL_ID").write_text(f"{MODEL_ID}\n")
    manifest = {"model": MODEL_ID, **recipe, "files": file_checksums(directory)}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def file_checksums(directory: Path) -> dict[str, str]:
    """SHA-256 of every file of a checkpoint but its manifest, by name."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name != MANIFEST
    }


def default_path() -> Path:
    """The shipped checkpoint's directory."""
    if not (SHIPPED / "config.json").exists():
        raise FileNotFoundError(
            f"visiongate/tiny-vlm is missing from {SHIPPED}: run `make train` to rebuild it"
        )
    return SHIPPED


def load_tokenizer() -> Any:
    """The shipped checkpoint's tokenizer."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_path())
