"""The chat's stages, one after the other, as one stream of events for the controller.

:func:`answer` resolves the model, plans the request (:mod:`gateway.api.plan`), checks its
tools and guide, admits it (:func:`~gateway.api.admission.admitted`), loads its media,
and runs it on the backend. It yields :class:`Admitted` (the rate-limit headers), the
text deltas (each after its :class:`~inference.contract.DeltaLogprobs` when ``logprobs``
is asked for; and :class:`~gateway.backend.Restarted` when a restartable answer starts again
elsewhere), then :class:`Answered` once the usage is committed. With ``n`` above 1 the
choices run at once (:mod:`gateway.api.choices`) and every event between is a
:class:`ChoiceEvent`, each choice's ending with its Final. Closing the stream early (a
client that left, an error) ends the admission there, as it should.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass

import msgspec

from gateway.api.admission import Admission, admitted
from gateway.api.chat_request import ChatCompletionRequest
from gateway.api.chat_response import Usage
from gateway.api.choices import choice_seed, merged
from gateway.api.guides import Guidance, guidance
from gateway.api.plan import ChatPlan, plan_chat
from gateway.api.services import Services
from gateway.api.timing import Timing
from gateway.auth import Principal
from gateway.backend import Restarted
from gateway.media import intake
from gateway.telemetry import current_request
from inference import contract


@dataclass(frozen=True, slots=True)
class Admitted:
    """The request was admitted: every response from here on carries these headers."""

    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class ChoiceEvent:
    """One event of choice ``index`` when ``n`` is above 1."""

    index: int
    item: contract.DeltaLogprobs | str | Restarted | contract.Final


@dataclass(frozen=True, slots=True)
class Answered:
    """The model's Final, and the usage to report; the usage record is committed.

    With ``n`` above 1, ``final`` sums the choices (the prompt counted once) and ``choices``
    holds each one's Final, by index.
    """

    final: contract.Final
    usage: Usage
    choices: Sequence[contract.Final] = ()


Event = Admitted | contract.DeltaLogprobs | str | Restarted | ChoiceEvent | Answered
# What the backend streams for one answer.
BackendItem = contract.Prefill | contract.DeltaLogprobs | str | contract.Final | Restarted


def generate_request(
    chat: ChatCompletionRequest, plan: ChatPlan, guided: Guidance, default_max_tokens: int
) -> contract.GenerateRequest:
    """The contract's request: the planned messages, the chat's sampling, tools and guide."""
    request = contract.GenerateRequest(
        messages=plan.messages,
        stop=chat.stop_list,
        seed=chat.seed,
        tools=guided.tools,
        tool_choice=guided.tool_choice,
        guide=guided.guide,
    )
    if chat.parallel_tool_calls is not None:
        request.parallel_tool_calls = chat.parallel_tool_calls
    request.max_tokens = chat.max_completion_tokens or chat.max_tokens or default_max_tokens
    if chat.temperature is not None:
        request.temperature = chat.temperature
    if chat.top_p is not None:
        request.top_p = chat.top_p
    if chat.presence_penalty is not None:
        request.presence_penalty = chat.presence_penalty
    if chat.frequency_penalty is not None:
        request.frequency_penalty = chat.frequency_penalty
    if chat.logprobs:
        request.logprobs = chat.top_logprobs or 0
    return request


async def answer(
    services: Services,
    principal: Principal,
    chat: ChatCompletionRequest,
    *,
    request_bytes: int,
    request_id: str,
    timing: Timing,
) -> AsyncGenerator[Event, None]:
    """The request's events, as the module says; errors are raised, OpenAI-shaped."""
    settings = services.settings
    stage = services.telemetry.stage  # a child span per stage of the request
    model = services.registry.resolve(chat.model)
    await services.registry.ensure_described()  # Triton may not have been ready at startup
    info = current_request()
    if info is not None:
        info.model, info.org, info.tier = model.id, principal.org_name, principal.tier
    guided = guidance(chat, model, settings)
    plan = plan_chat(chat, settings)
    async with admitted(
        services,
        principal,
        model,
        plan,
        max_tokens=chat.max_completion_tokens or chat.max_tokens,
        request_id=request_id,
        timing=timing,
    ) as admission:
        yield Admitted(admission.headers)
        media = await stage(
            "visiongate.media",
            intake(
                plan.media,
                model,
                settings,
                video_fps=chat.video_fps,
                video_max_frames=chat.video_max_frames,
                request_bytes=request_bytes,
                org_id=principal.org_id,
            ),
        )
        admission.media_loaded(len(media.images), sum(media.frame_counts))
        request = generate_request(chat, plan, guided, settings.default_max_tokens)
        admission.submitted()
        restartable = not chat.stream  # nothing is shown before the whole answer
        choices: Sequence[contract.Final] = ()
        if chat.choices > 1:
            ended: dict[int, contract.Final] = {}
            streams = [
                services.backend.generate(
                    model.triton_model,
                    msgspec.structs.replace(request, seed=choice_seed(request.seed, i)),
                    media.images,
                    media.video_frames,
                    media.frame_counts,
                    restartable=restartable,
                )
                for i in range(chat.choices)
            ]
            every = _choices(streams, admission)
            async with aclosing(every):
                async for event in every:
                    if isinstance(event.item, contract.Final):
                        ended[event.index] = event.item
                    yield event
            choices = [ended[i] for i in range(chat.choices)]  # each ends with its Final
            admission.completed(_summed(choices))
        else:
            events = services.backend.generate(
                model.triton_model,
                request,
                media.images,
                media.video_frames,
                media.frame_counts,
                restartable=restartable,
            )
            async with aclosing(events):
                async for item in events:
                    if isinstance(item, str):
                        admission.delta()
                        yield item
                    elif isinstance(item, contract.Prefill):
                        admission.prefill(item)
                    elif isinstance(item, Restarted):
                        admission.restarted()
                        yield item
                    elif isinstance(item, contract.DeltaLogprobs):
                        yield item
                    else:
                        admission.completed(item)
                        break
    final = admission.final
    assert final is not None  # else admitted() raised
    if info is not None:
        info.input_tokens, info.output_tokens = final.prompt_tokens, final.completion_tokens
        if timing.first is not None:
            info.ttft_s = timing.first - timing.received
    yield Answered(final, timing.usage(final), choices)


async def _choices(
    streams: Sequence[AsyncGenerator[BackendItem, None]], admission: Admission
) -> AsyncGenerator[ChoiceEvent, None]:
    """The choices' backend streams run at once, their events as they come, for admission."""
    deltas = [0] * len(streams)  # per choice, to forget a restarted choice's
    async with aclosing(merged(streams)) as events:
        async for index, item in events:
            if isinstance(item, str):
                admission.delta()
                deltas[index] += 1
                yield ChoiceEvent(index, item)
            elif isinstance(item, contract.Prefill):
                admission.prefill(item)
            elif isinstance(item, Restarted):
                admission.choice_restarted(deltas[index])
                deltas[index] = 0
                yield ChoiceEvent(index, item)
            else:
                if isinstance(item, contract.Final):
                    admission.timing.mark_first()
                yield ChoiceEvent(index, item)


def _summed(choices: Sequence[contract.Final]) -> contract.Final:
    """The choices' counts as one Final: the prompt once, every choice's completion tokens."""
    return contract.Final(
        finish_reason=choices[0].finish_reason,
        prompt_tokens=choices[0].prompt_tokens,
        completion_tokens=sum(final.completion_tokens for final in choices),
    )
