"""The vlm model in a real Triton server, driven over gRPC the way the gateway drives it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import tritonclient.grpc.aio as aio

from gateway.limits import estimate_prompt
from gateway.settings import Settings
from gateway.triton_process import EmbeddedTriton
from inference import contract, tiny_vlm
from inference.contract import GenerateRequest, ImagePart, Message, VideoPart
from inference.prompt_cost import SAMPLE
from tests.support.chat import prompt_tokens
from tests.support.media import image_bytes
from tests.support.triton_client import metric, stream, user


@pytest.fixture(scope="session")
async def client(triton: EmbeddedTriton) -> AsyncIterator[aio.InferenceServerClient]:
    grpc = aio.InferenceServerClient(triton.grpc_url)
    yield grpc
    await grpc.close()


TWO_IMAGES = [image_bytes(1), image_bytes(2, fmt="JPEG")]


async def test_text_and_two_images_stream_deltas_then_counts(
    client: aio.InferenceServerClient,
) -> None:
    request = GenerateRequest(
        messages=[user("Compare these.", ImagePart(0), ImagePart(1))], max_tokens=48, seed=7
    )
    answer = await stream(client, request, TWO_IMAGES)

    assert answer.error is None
    assert len(answer.deltas) > 1, "the answer should arrive in several deltas"
    assert answer.finish_reason in {"stop", "length"}
    assert answer.prompt_tokens is not None and answer.completion_tokens is not None
    assert 0 < answer.completion_tokens <= 48

    one_image = await stream(
        client,
        GenerateRequest(messages=[user("Compare these.", ImagePart(0))], max_tokens=4),
        [TWO_IMAGES[0]],
    )
    assert one_image.prompt_tokens is not None
    assert answer.prompt_tokens > one_image.prompt_tokens, "an image adds prompt tokens"


async def test_max_tokens_is_never_exceeded_and_finish_is_length(
    client: aio.InferenceServerClient,
) -> None:
    finishes = []
    for seed in range(4):
        # The default model was trained to ramble without end on prompts like this one.
        request = GenerateRequest(messages=[user("Tell me a story.")], max_tokens=5, seed=seed)
        answer = await stream(client, request)
        finishes.append((answer.finish_reason, answer.completion_tokens))
    assert finishes == [("length", 5)] * 4


async def test_same_seed_same_text_other_seed_other_text(client: aio.InferenceServerClient) -> None:
    def ask(seed: int) -> GenerateRequest:
        # A rambling answer: many likely words at each step, so seeds tell apart.
        request = [user("Tell me a story.", ImagePart(0))]
        return GenerateRequest(messages=request, max_tokens=24, seed=seed)

    first, again, other = await asyncio.gather(
        stream(client, ask(11), TWO_IMAGES[:1]),
        stream(client, ask(11), TWO_IMAGES[:1]),
        stream(client, ask(12), TWO_IMAGES[:1]),
    )
    assert first.text and first.text == again.text, "concurrent requests with one seed must agree"
    assert first.text != other.text


async def test_stop_string_ends_generation_without_sending_it(
    client: aio.InferenceServerClient,
) -> None:
    # The default model rambles on without end here: 64 tokens of text to cut.
    base = GenerateRequest(
        messages=[user("Tell me a story.")], max_tokens=64, seed=3, temperature=0.0
    )
    full = await stream(client, base)
    assert full.completion_tokens == 64 and full.finish_reason == "length"
    stop = full.text[10:12]  # two characters the greedy answer is known to produce
    cut = await stream(
        client,
        GenerateRequest(
            messages=base.messages, max_tokens=64, seed=3, temperature=0.0, stop=[stop]
        ),
    )
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.completion_tokens is not None and cut.completion_tokens < 64


async def test_the_prompt_size_is_reported_before_the_first_delta(
    client: aio.InferenceServerClient,
) -> None:
    answer = await stream(
        client, GenerateRequest(messages=[user("Hi")], max_tokens=8, temperature=0.0)
    )
    assert answer.error is None
    assert answer.deltas_before_prefill == 0
    assert answer.prefill_tokens == answer.prompt_tokens == prompt_tokens("Hi")


async def test_the_reported_prompt_cost_predicts_the_prompt_size(
    client: aio.InferenceServerClient,
) -> None:
    describe = await stream(client, contract.DescribeRequest())
    assert describe.capabilities is not None and describe.capabilities.prompt_cost is not None
    cost = describe.capabilities.prompt_cost
    tokenizer = tiny_vlm.load_tokenizer()
    chats = [
        [user("Hi")],
        [Message("system", "Be brief."), user("What is in the picture?")],
        [user("One"), Message("assistant", "Two, three."), user("Four?" * 40)],
        [user(SAMPLE)],
        [user(SAMPLE), Message("assistant", SAMPLE), user(SAMPLE)],
    ]
    for messages in chats:
        answer = await stream(client, GenerateRequest(messages=messages, max_tokens=1))
        assert answer.prompt_tokens is not None
        texts = [
            part if isinstance(part, str) else part.text
            for m in messages
            for part in ([m.content] if isinstance(m.content, str) else m.content or [])
            if isinstance(part, str | contract.TextPart)
        ]
        # What the template adds, whatever the text: off by at most a token a message (roles
        # differ in length, and the sample measures only the user's and the assistant's).
        text_tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        template = len(messages) * cost.message_tokens + cost.base_tokens
        assert abs(template - (answer.prompt_tokens - text_tokens)) <= len(messages), messages
        if set(texts) == {SAMPLE}:
            # Text like the sample the ratio was measured on: the gateway's estimate is exact.
            estimate = estimate_prompt(
                Settings(),
                cost,
                text_chars=sum(map(len, texts)),
                messages=len(messages),
                images=0,
                video_frames=0,
            )
            assert 0 <= estimate - answer.prompt_tokens <= len(messages), messages


async def test_cancelling_mid_stream_stops_generation(
    client: aio.InferenceServerClient, triton: EmbeddedTriton
) -> None:
    tokens_before = metric(triton.metrics_url, "vlm_generated_tokens_total")
    cancelled_before = metric(triton.metrics_url, "vlm_cancelled_requests_total")
    long = GenerateRequest(messages=[user("Go on.")], max_tokens=3000, seed=1, stop=[])
    answer = await stream(client, long, stop_after=3)
    assert len(answer.deltas) == 3

    deadline = asyncio.get_running_loop().time() + 10
    while metric(triton.metrics_url, "vlm_cancelled_requests_total") == cancelled_before:
        assert asyncio.get_running_loop().time() < deadline, "the model never saw the cancellation"
        await asyncio.sleep(0.1)
    generated = metric(triton.metrics_url, "vlm_generated_tokens_total") - tokens_before
    await asyncio.sleep(0.5)  # a window in which nothing more may be generated
    assert metric(triton.metrics_url, "vlm_generated_tokens_total") - tokens_before == generated
    # Uncancelled, "Go on." rambles to the 3,000-token limit (the default model was trained
    # to); cancelled after three deltas, it stops within a few more tokens.
    assert generated < 30, f"{generated} tokens generated after a cancel at 3 deltas"


@pytest.mark.parametrize(
    ("request_bytes", "images", "expected"),
    [
        (b"{not json", [], "'request' is not a valid request"),
        (b'{"op": "generate", "messages": [{"role": "wizard"}]}', [], "$.messages[0].role"),
        (b'{"op": "generate", "messages": [], "temperature": "hot"}', [], "$.temperature"),
        (None, [], "request"),
        (
            contract.encode_request(GenerateRequest(messages=[user("x", ImagePart(0))])),
            [b"\x89PNG\r\n\x1a\nthis is not really a png"],
            "images[0]",
        ),
        (
            contract.encode_request(GenerateRequest(messages=[user("x", ImagePart(0))])),
            [image_bytes(1)[:60]],
            "images[0]",
        ),
        (
            contract.encode_request(GenerateRequest(messages=[user("x", ImagePart(3))])),
            [],
            "image index 3",
        ),
    ],
    ids=[
        "malformed-json",
        "bad-role",
        "wrong-type",
        "missing-tensor",
        "corrupt-image",
        "truncated-image",
        "bad-index",
    ],
)
async def test_bad_requests_get_errors_naming_the_problem_and_the_instance_survives(
    client: aio.InferenceServerClient,
    triton: EmbeddedTriton,
    request_bytes: bytes | None,
    images: list[bytes],
    expected: str,
) -> None:
    completed = metric(triton.metrics_url, "vlm_completed_requests_total")
    answer = await stream(client, request_bytes, images)
    assert answer.error is not None and expected in answer.error, answer.error

    good = await stream(client, GenerateRequest(messages=[user("Hello")], max_tokens=3, seed=1))
    assert good.error is None and good.completion_tokens is not None
    # Custom metrics live in the model's stub process: had it restarted, the counter would reset.
    assert metric(triton.metrics_url, "vlm_completed_requests_total") == completed + 1


async def test_multi_turn_with_an_image_in_the_first_turn(
    client: aio.InferenceServerClient,
) -> None:
    history = [
        Message(role="system", content="Be brief."),
        user("What is this?", ImagePart(0)),
        Message(role="assistant", content="A square."),
        user("And its colour?"),
    ]
    answer = await stream(
        client, GenerateRequest(messages=history, max_tokens=8, seed=2), TWO_IMAGES[:1]
    )
    short = await stream(client, GenerateRequest(messages=history[-1:], max_tokens=8, seed=2))
    assert answer.error is None and answer.prompt_tokens and short.prompt_tokens
    assert answer.prompt_tokens > short.prompt_tokens


async def test_video_frames_go_in_as_a_sequence_of_images(
    client: aio.InferenceServerClient,
) -> None:
    describe = await stream(client, contract.DescribeRequest())
    assert describe.capabilities is not None
    assert describe.capabilities.video == "frames_as_images"
    assert describe.capabilities.vision and describe.capabilities.model == "visiongate/tiny-vlm"

    frames = [image_bytes(i) for i in range(4)]
    video = await stream(
        client,
        GenerateRequest(messages=[user("What happens?", VideoPart(0))], max_tokens=4, seed=1),
        video_frames=frames,
        frame_counts=[4],
    )
    as_images = await stream(
        client,
        GenerateRequest(
            messages=[user("What happens?", *(ImagePart(i) for i in range(4)))],
            max_tokens=4,
            seed=1,
        ),
        images=frames,
    )
    assert video.error is None and video.prompt_tokens == as_images.prompt_tokens
    assert video.text == as_images.text


async def test_top_p_and_penalties_shape_the_sampling(client: aio.InferenceServerClient) -> None:
    messages = [user("Say something.")]
    greedy = await stream(
        client, GenerateRequest(messages=messages, max_tokens=48, temperature=0.0)
    )
    # top_p this small keeps only the most likely token: sampling becomes greedy, whatever the seed.
    nucleus = await stream(
        client, GenerateRequest(messages=messages, max_tokens=48, top_p=1e-6, seed=99)
    )
    assert nucleus.text == greedy.text

    penalised = await stream(
        client,
        GenerateRequest(
            messages=messages,
            max_tokens=48,
            temperature=0.0,
            frequency_penalty=2.0,
            presence_penalty=1.0,
        ),
    )
    # Greedy rambling repeats a few words; penalties push it to new ones.
    assert len(set(penalised.text)) > len(set(greedy.text))


async def test_many_concurrent_streams_some_cancelled_all_served(
    client: aio.InferenceServerClient, triton: EmbeddedTriton
) -> None:
    # Many one-token requests ending at once on the model's threads: this crashed tritonserver
    # (SIGSEGV) while the model's metric updates were not serialised.
    completed = metric(triton.metrics_url, "vlm_completed_requests_total")
    slots = asyncio.Semaphore(16)

    async def one(seed: int) -> contract.FinishReason | None:
        cancel = seed % 25 == 0
        request = GenerateRequest(messages=[user("Hi")], max_tokens=300 if cancel else 1, seed=seed)
        async with slots:
            answer = await stream(client, request, stop_after=1 if cancel else None)
        assert answer.error is None, answer.error
        return None if cancel else answer.finish_reason

    finishes = await asyncio.gather(*(one(seed) for seed in range(800)))
    assert triton.is_ready()
    answered = [f for f in finishes if f is not None]
    assert len(answered) == 768 and set(answered) <= {"length", "stop"}
    assert metric(triton.metrics_url, "vlm_completed_requests_total") >= completed + 768
