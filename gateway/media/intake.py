"""Media intake: the one place where a request's media references become validated bytes.

The API's plan (:mod:`gateway.api.plan`) lists every ``image_url`` / ``video_url`` / ``video``
part as a :class:`MediaRef`; intake returns their bytes in :class:`Media` (images, and each
video's sampled frames), in the order of the references. A part that cannot be taken
raises :class:`MediaError` whose ``param`` is the part's path, e.g.
``messages[0].content[1].image_url.url``, and whose ``code`` names the rule.

Order of work, cheapest first: every rule that needs only the request (capabilities,
counts, the base64 body cap, URL shapes, local roots) is checked before anything is
fetched or read; then every part is loaded concurrently, and decoding runs on the media
workers (:mod:`gateway.media.workers`): threads of their own, shared fairly between
organisations, so that one large image does not stall the event loop and one
organisation's media do not starve another's; a base64 JPEG of at most
:data:`~gateway.media.images.INLINE_JPEG_BYTES` is checked on the event loop instead, which
costs less than the hop. Cancelling intake (the client left) stops its decoding too.
Docs: docs/media.md.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal, ParamSpec, TypeVar

import httpx

from gateway.errors import ApiError, InvalidRequest, PayloadTooLarge
from gateway.media import fetch
from gateway.media.data_uri import DataURIError, decode_data_uri, is_data_uri
from gateway.media.images import INLINE_JPEG_BYTES, ImageError, cheap_to_check, validate_image
from gateway.media.local import LocalMediaError, is_local, local_path, read_local
from gateway.media.video import Sampling, sample_frames
from gateway.media.workers import MediaWorkers, for_settings
from gateway.registry import ModelEntry
from gateway.settings import Settings
from gateway.telemetry import current_request

T = TypeVar("T")
Kind = Literal["image", "video"]
# The longest data: URI whose image is decoded on the event loop: base64 of INLINE_JPEG_BYTES.
_INLINE_URI = 4 * INLINE_JPEG_BYTES // 3 + 256
Source = Literal["data", "http", "local"]


class MediaError(InvalidRequest):
    """A media part cannot be taken; ``param`` is its path in the request."""

    code = "invalid_media"


@dataclass(frozen=True, slots=True)
class MediaRef:
    """One media part of a request, in order of appearance: its kind, URL and param path."""

    kind: Kind
    url: str
    param: str


@dataclass
class Media:
    """A request's validated media: images, every video's frames, and each video's count."""

    images: list[bytes] = field(default_factory=list)
    video_frames: list[bytes] = field(default_factory=list)
    frame_counts: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Part:
    """A media reference and where its bytes are."""

    ref: MediaRef
    source: Source

    @property
    def kind(self) -> Kind:
        """``image`` or ``video``."""
        return self.ref.kind

    @property
    def url(self) -> str:
        """The URL as the request wrote it."""
        return self.ref.url

    @property
    def param(self) -> str:
        """The part's path in the request."""
        return self.ref.param


def frames_per_video(video_max_frames: int | None, settings: Settings) -> int:
    """The most frames one video may become: the request's ``video_max_frames``, capped."""
    wanted = video_max_frames or settings.video_max_frames
    return min(wanted, settings.video_max_frames_ceiling)


def policy(settings: Settings) -> fetch.FetchPolicy:
    """The fetch policy the settings describe."""
    return fetch.FetchPolicy(
        allowed_hosts=frozenset(settings.media_allowed_hosts),
        allowed_private_hosts=frozenset(settings.media_allowed_private_hosts),
        connect_timeout_s=settings.media_connect_timeout_s,
        total_timeout_s=settings.media_fetch_timeout_s,
        max_redirects=settings.media_max_redirects,
    )


def _source(part: MediaRef) -> Source:
    if is_data_uri(part.url):
        return "data"
    if is_local(part.url):
        return "local"
    scheme = part.url.partition(":")[0].lower()
    if scheme in ("http", "https"):
        return "http"
    if scheme.isalpha() and ":" in part.url:
        raise MediaError(
            f"Media URLs may be http(s), data: or file:, not `{scheme}:`.",
            param=part.param,
            code="media_url_forbidden",
        )
    raise MediaError(
        f"The {part.kind} must be an http(s) URL, a base64 data: URI or an absolute file path.",
        param=part.param,
        code="invalid_media_url",
    )


def _precheck(
    refs: Sequence[MediaRef], model: ModelEntry, settings: Settings, request_bytes: int
) -> list[_Part]:
    """Every rule that needs nothing fetched, read or decoded; the parts with their sources."""
    images = [p for p in refs if p.kind == "image"]
    videos = [p for p in refs if p.kind == "video"]
    if images and not model.vision:
        raise MediaError(
            f"The model `{model.id}` does not accept images.",
            param=images[0].param,
            code="images_not_supported",
        )
    if videos and not model.video:
        raise MediaError(
            f"The model `{model.id}` does not accept video.",
            param=videos[0].param,
            code="video_not_supported",
        )
    max_images = min(settings.max_images_per_request, model.max_images)
    if len(images) > max_images:
        raise MediaError(
            f"Too many images: {len(images)} in this request; the model `{model.id}` accepts at "
            f"most {max_images} images per request.",
            param=images[max_images].param,
            code="too_many_images",
        )
    if len(videos) > settings.max_videos_per_request:
        raise MediaError(
            f"Too many videos: {len(videos)} in this request; at most "
            f"{settings.max_videos_per_request} are accepted.",
            param=videos[settings.max_videos_per_request].param,
            code="too_many_videos",
        )
    parts = [_Part(ref, _source(ref)) for ref in refs]
    for part in parts:
        if part.source == "data" and part.kind == "image":
            # The body reader decides this while streaming; here it is exact whatever the
            # JSON spelling of the data URI.
            if request_bytes > settings.max_base64_request_bytes:
                raise PayloadTooLarge(
                    f"A request carrying base64 image data may be at most "
                    f"{settings.max_base64_request_bytes} bytes; this one is {request_bytes}.",
                    param=part.param,
                )
        elif part.source == "http":
            try:
                fetch.check_url(httpx.URL(part.url), policy(settings))
            except fetch.FetchError as exc:
                raise MediaError(exc.message, param=part.param, code=exc.code) from None
            except httpx.InvalidURL as exc:
                raise MediaError(
                    f"The media URL is not valid ({exc}).",
                    param=part.param,
                    code="invalid_media_url",
                ) from None
        elif part.source == "local":
            try:
                local_path(part.url)
            except LocalMediaError as exc:
                raise MediaError(exc.message, param=part.param, code=exc.code) from None
            if not settings.allowed_media_roots:
                raise MediaError(
                    "Local files are not enabled on this service (no allowed media roots).",
                    param=part.param,
                    code="local_media_forbidden",
                )
    return parts


class _Loader:
    """Loads and validates the parts of one request."""

    def __init__(
        self,
        settings: Settings,
        sampling: Sampling,
        http: httpx.AsyncClient | None,
        workers: MediaWorkers,
        org_id: int,
    ) -> None:
        self.settings = settings
        self.sampling = sampling
        self.http = http
        self.policy = policy(settings)
        self.workers = workers
        self.org_id = org_id

    def _cap(self, part: _Part) -> int:
        settings = self.settings
        if part.kind == "image":
            if part.source == "local":
                return settings.max_local_media_bytes
            return settings.max_image_url_bytes
        if part.source == "local":
            return min(settings.max_local_media_bytes, settings.max_video_bytes)
        return settings.max_video_bytes

    async def raw(self, part: _Part) -> bytes:
        """The part's encoded bytes, from wherever they are."""
        if part.source == "http":
            assert self.http is not None
            return await fetch.fetch(self.http, part.url, self.policy, self._cap(part))
        assert part.source == "local", "data: parts are decoded in a worker thread"
        roots = self.settings.allowed_media_roots
        return await asyncio.to_thread(read_local, part.url, roots, self._cap(part))

    async def load(self, part: _Part) -> list[bytes]:
        """The bytes to forward: one image, or a video's sampled frames."""
        try:
            if part.source == "data" and part.kind == "image" and len(part.url) <= _INLINE_URI:
                # A small image: decoded here; a JPEG is checked here too (cheaper than a hop).
                _, data = decode_data_uri(part.url, part.kind)
                if cheap_to_check(data):
                    return [validate_image(data, self.settings.max_image_pixels)]
                job = functools.partial(self._check, part, data)
            elif part.source == "data":
                # Decoding base64 is CPU work too; it joins the validation in the thread.
                job = functools.partial(self._decode_and_check, part)
            else:
                job = functools.partial(self._check, part, await self.raw(part))
            return await self.workers.run(self.org_id, job)
        except (fetch.FetchError, LocalMediaError, ImageError) as exc:
            code = exc.code
            if code == "media_too_large":
                code = f"{part.kind}_too_large"
            elif code == "invalid_image" and part.kind == "video":
                code = "invalid_video"
            raise MediaError(exc.message, param=part.param, code=code) from None
        except DataURIError as exc:
            raise MediaError(
                f"Invalid {part.kind} data URI: {exc}.",
                param=part.param,
                code=f"invalid_{part.kind}",
            ) from None

    def _decode_and_check(self, part: _Part, cancelled: threading.Event) -> list[bytes]:
        _, data = decode_data_uri(part.url, part.kind)
        if part.kind == "video" and len(data) > self.settings.max_video_bytes:
            raise fetch.TooLarge(
                f"The video is {len(data)} bytes; at most {self.settings.max_video_bytes}."
            )
        return self._check(part, data, cancelled)

    def _check(self, part: _Part, data: bytes, cancelled: threading.Event) -> list[bytes]:
        if part.kind == "image":
            return [validate_image(data, self.settings.max_image_pixels, cancelled)]
        return sample_frames(data, self.sampling, cancelled)


async def _all(work: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; on the first failure cancel the rest and raise that failure."""
    if len(work) == 1:  # nothing to run alongside: no task
        return [await work[0]]
    tasks = [asyncio.create_task(one) for one in work]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


P = ParamSpec("P")


def _rejections_counted(func: Callable[P, Awaitable[Media]]) -> Callable[P, Awaitable[Media]]:
    """Note the rule (error code) of a refusal, for the media-rejections metric."""

    @functools.wraps(func)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> Media:
        try:
            return await func(*args, **kwargs)
        except ApiError as exc:
            info = current_request()
            if info is not None:
                info.media_rejection = exc.code or "invalid_media"
            raise

    return counted


@_rejections_counted
async def intake(
    refs: Sequence[MediaRef],
    model: ModelEntry,
    settings: Settings,
    *,
    video_fps: float | None = None,
    video_max_frames: int | None = None,
    request_bytes: int = 0,
    org_id: int,
) -> Media:
    """The validated bytes of a request's media references, in order within each kind.

    ``model`` says which kinds and how many it takes; ``org_id`` is the organisation whose
    share of the media workers decodes them.
    """
    result = Media()
    if not refs:
        return result
    parts = _precheck(refs, model, settings, request_bytes)
    sampling = Sampling(
        fps=video_fps or settings.video_fps,
        max_frames=frames_per_video(video_max_frames, settings),
        max_duration_s=settings.max_video_duration_s,
        max_pixels=settings.max_image_pixels,
        jpeg_quality=settings.video_frame_jpeg_quality,
        max_decoded_frames=settings.video_max_decoded_frames,
        timeout_s=settings.video_decode_timeout_s,
    )
    async with AsyncExitStack() as stack:
        http = None
        if any(part.source == "http" for part in parts):
            http = await stack.enter_async_context(fetch.client(policy(settings)))
        loader = _Loader(settings, sampling, http, for_settings(settings), org_id)
        loaded = await _all([loader.load(part) for part in parts])
    for part, data in zip(parts, loaded, strict=True):
        if part.kind == "image":
            result.images.extend(data)
        else:
            result.video_frames.extend(data)
            result.frame_counts.append(len(data))
    return result
