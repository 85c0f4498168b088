"""The cost of guided decoding on the default model, per token, and grammar compile time.

Run: ``.venv/bin/python -m bench.guided_bench``. Prints figures; asserts nothing. Runs the
engine in-process (no Triton), so it measures the engine alone.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from inference.contract import GenerateRequest, Guide, Message, TextPart
from inference.engines import Hooks, Media, load_engine
from inference.guidance import Guidance

MID_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        f"field_{i}": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "label": {"type": "string", "maxLength": 20},
                    "kind": {"enum": ["a", "b", "c"]},
                    "score": {"type": "number", "minimum": 0, "maximum": 1},
                },
                "required": ["label", "kind"],
            },
        }
        for i in range(20)
    },
    "required": ["field_0", "field_1"],
}
RUNS = 6


def ms_per_token(engine: Any, guide: Guide | None) -> float:
    """Median milliseconds per decode step (first token to last, so no prefill) over seeds."""
    rates = []
    for seed in range(RUNS):
        stamps: list[float] = []
        request = GenerateRequest(
            messages=[Message(role="user", content=[TextPart("Describe it as JSON.")])],
            max_tokens=400,
            seed=seed,
            guide=guide,
        )
        hooks = Hooks(
            emit=lambda _: None,
            cancelled=lambda: False,
            on_token=lambda stamps=stamps: stamps.append(time.perf_counter()),
        )
        engine.generate(request, Media(), hooks)
        if len(stamps) > 10:
            rates.append((stamps[-1] - stamps[0]) * 1000 / (len(stamps) - 1))
    return statistics.median(rates)


def compile_ms(guidance: Guidance) -> float:
    """Median milliseconds to compile MID_SCHEMA into a matcher and compute its first mask."""
    times = []
    for _ in range(20):
        started = time.perf_counter()
        grammar = guidance.grammar(Guide(type="json_schema", json_schema=MID_SCHEMA), None, False)
        guidance.matcher(grammar).compute_bitmask()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    """Print the figures."""
    engine: Any = load_engine("transformers", "", "cpu")
    plain = ms_per_token(engine, None)
    json_object = ms_per_token(engine, Guide(type="json"))
    schema = ms_per_token(engine, Guide(type="json_schema", json_schema=MID_SCHEMA))
    print(f"unguided:             {plain:6.3f} ms/token")
    print(f"json_object:          {json_object:6.3f} ms/token  (x{json_object / plain:.2f})")
    print(f"json_schema (20 props): {schema:4.3f} ms/token  (x{schema / plain:.2f})")
    print(f"grammar compile, 20-property nested schema: {compile_ms(engine.guidance):.2f} ms")


if __name__ == "__main__":
    main()
