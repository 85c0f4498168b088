"""Media intake end to end: the unmodified `openai` SDK against `visiongate serve` and Triton.

One extra gateway (module-scoped) allows the test HTTP server's 127.0.0.1 and one media
root; the session's default gateway has neither, as an operator's default would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.triton_process import EmbeddedTriton
from tests.support.chat import MODEL, ask, asked_tokens, image, refused, video_url
from tests.support.media import (
    MediaServer,
    animated_gif,
    data_uri,
    encode,
    listener,
    media_server,
    noise_png,
    padded,
    photo,
    png_bomb,
    video,
)
from tests.support.processes import GatewayProcess, start_gateway

MiB = 1024 * 1024
NO_VIDEO = "visiongate/no-video"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("media-roots")
    inside = base / "allowed"
    inside.mkdir()
    (base / "secret.png").write_bytes(encode(photo(16, 16), "PNG"))
    (inside / "photo.webp").write_bytes(encode(photo(80, 60), "WEBP"))
    (inside / "photo.bmp").write_bytes(encode(photo(40, 30), "BMP"))
    (inside / "clip.mp4").write_bytes(video(seconds=2.0))
    (inside / "at-cap.png").write_bytes(padded(encode(photo(32, 32), "PNG"), 20 * MiB))
    (inside / "over-cap.png").write_bytes(padded(encode(photo(32, 32), "PNG"), 20 * MiB + 1))
    (inside / "escape.png").symlink_to(base / "secret.png")
    return inside


@pytest.fixture(scope="module")
def server() -> Iterator[MediaServer]:
    with media_server() as served:
        served.files["/photo.jpg"] = encode(photo(120, 90), "JPEG")
        served.files["/anim.gif"] = animated_gif()
        served.files["/at-cap.png"] = padded(noise_png(64, 64), 20 * MiB)
        served.files["/over-cap.png"] = padded(noise_png(64, 64), 20 * MiB + 1)
        served.files["/8k.png"] = encode(photo(7680, 4320).convert("L"), "PNG")
        served.files["/over-pixels.png"] = png_bomb(1, 33_177_601)
        served.files["/clip.webm"] = video(seconds=2.0, fmt="webm")
        served.redirects["/moved.jpg"] = "/photo.jpg"
        yield served


@pytest.fixture(scope="module")
def media_gateway(
    triton: EmbeddedTriton,
    api_key: str,
    root: Path,
    server: MediaServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    env = {
        "VISIONGATE_MEDIA_ALLOWED_PRIVATE_HOSTS": '["127.0.0.1"]',
        "VISIONGATE_ALLOWED_MEDIA_ROOTS": json.dumps([str(root)]),
        "VISIONGATE_MODELS": json.dumps([{"id": MODEL}, {"id": NO_VIDEO, "video": False}]),
    }
    log_path = tmp_path_factory.mktemp("media-gateway") / "gateway.log"
    process = start_gateway(triton.http_url, log_path, api_key, env=env)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(media_gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=media_gateway.url + "/v1", api_key=media_gateway.api_key, max_retries=0
    )


@pytest.fixture(scope="module")
def plain_client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key, max_retries=0)


def answered(completion: Any) -> int:
    """The prompt tokens of a real answer."""
    assert completion.object == "chat.completion"
    assert isinstance(completion.choices[0].message.content, str)
    assert completion.choices[0].finish_reason in ("stop", "length")
    return int(completion.usage.prompt_tokens)


P1 = "messages[0].content[1]"


def test_images_every_way_and_format_in_one_request(
    client: openai.OpenAI, server: MediaServer, root: Path
) -> None:
    text_only = answered(ask(client))
    one = answered(ask(client, image(server.url + "/photo.jpg")))
    five = answered(
        ask(
            client,
            image(server.url + "/moved.jpg"),  # a redirect, followed
            image(data_uri(encode(photo(50, 40), "PNG"), "image/png")),
            image(f"file://{root}/photo.webp"),
            image(f"{root}/photo.bmp"),  # a bare absolute path, as vllm-mlx accepts
            image(server.url + "/anim.gif"),
        )
    )
    # Every picture reached the model: each counts its tokens in the prompt.
    assert (text_only, one, five) == (asked_tokens(0), asked_tokens(1), asked_tokens(5))


def test_too_many_images_counted_across_messages_before_any_fetch(
    client: openai.OpenAI, server: MediaServer
) -> None:
    before = len(server.requests)
    urls = [image(f"{server.url}/photo.jpg?n={i}") for i in range(6)]
    messages = [
        {"role": "user", "content": urls[:3]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": urls[3:]},
    ]
    refused(
        lambda: client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2),  # type: ignore[arg-type]
        400,
        "too_many_images",
        "messages[2].content[2].image_url.url",
    )
    assert len(server.requests) == before


def test_image_url_size_cap(client: openai.OpenAI, server: MediaServer) -> None:
    answered(ask(client, image(server.url + "/at-cap.png")))
    for path in ("/over-cap.png", "/endless"):
        refused(
            lambda path=path: ask(client, image(server.url + path)),  # type: ignore[misc]
            400,
            "image_too_large",
            f"{P1}.image_url.url",
        )


def _sdk_body_size(gateway: GatewayProcess, **request: Any) -> int:
    """The bytes the SDK would send for ``request``: measured in a hook, never sent."""
    sizes: list[int] = []

    def measure(sent: httpx.Request) -> None:
        sizes.append(len(sent.read()))
        raise RuntimeError("measured")

    http = httpx.Client(event_hooks={"request": [measure]})
    measuring = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=gateway.api_key, max_retries=0, http_client=http
    )
    with pytest.raises(RuntimeError, match="measured"):
        measuring.chat.completions.create(**request)
    return sizes[0]


def test_base64_request_cap_at_the_limit_and_one_byte_over(
    client: openai.OpenAI, media_gateway: GatewayProcess
) -> None:
    cap = 4 * MiB
    picture = data_uri(noise_png(800, 700), "image/png")
    request: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": [image(picture)]}],
        "max_tokens": 2,
        "extra_body": {"padding": ""},
    }
    base = _sdk_body_size(media_gateway, **request)
    assert base < cap
    request["extra_body"] = {"padding": "x" * (cap - base)}
    assert _sdk_body_size(media_gateway, **request) == cap
    answered(client.chat.completions.create(**request))
    request["extra_body"] = {"padding": "x" * (cap - base + 1)}
    message = refused(lambda: client.chat.completions.create(**request), 413, "request_too_large")
    assert str(cap) in message
    # Without base64 image data the same size is fine.
    request["messages"] = [{"role": "user", "content": "Hi"}]
    request["extra_body"] = {"padding": "x" * (cap + 1)}
    answered(client.chat.completions.create(**request))


def test_pixel_cap(client: openai.OpenAI, server: MediaServer) -> None:
    answered(ask(client, image(server.url + "/8k.png")))  # 7680 × 4320 = exactly the cap
    refused(
        lambda: ask(client, image(server.url + "/over-pixels.png")),
        400,
        "image_resolution_too_large",
        f"{P1}.image_url.url",
    )
    bomb = data_uri(png_bomb(1, 40_000_000, corrupt_pixels=True), "image/png")
    refused(lambda: ask(client, image(bomb)), 400, "image_resolution_too_large")


@pytest.mark.parametrize(
    "url",
    [
        data_uri(encode(photo(16, 16), "TIFF"), "image/tiff"),
        data_uri(encode(photo(64, 64), "JPEG")[:-500], "image/jpeg"),
        "data:image/png," + "iVBORw0KGgo=",
        "data:text/plain;base64,aGVsbG8=",
    ],
    ids=["tiff", "truncated", "no-base64", "not-image"],
)
def test_invalid_images(client: openai.OpenAI, url: str) -> None:
    refused(lambda: ask(client, image(url)), 400, "invalid_image", f"{P1}.image_url.url")


def test_private_hosts_are_refused_without_any_connection(plain_client: openai.OpenAI) -> None:
    with listener("127.0.0.1") as v4, listener("::1") as v6:
        hosts = [
            f"127.0.0.1:{v4.port}",
            f"localhost:{v4.port}",
            f"[::1]:{v6.port}",
            f"[::ffff:127.0.0.1]:{v4.port}",
            f"0.0.0.0:{v4.port}",
            f"2130706433:{v4.port}",
            "169.254.169.254",
        ]
        for host in hosts:
            message = refused(
                lambda host=host: ask(plain_client, image(f"http://{host}/latest/meta-data")),  # type: ignore[misc]
                400,
                "media_url_forbidden",
                f"{P1}.image_url.url",
            )
            assert "not a public address" in message
    assert v4.accepted == [] and v6.accepted == []


def test_redirect_to_a_forbidden_host_is_refused_without_a_connection(
    client: openai.OpenAI, server: MediaServer
) -> None:
    with listener("127.0.0.1") as ear:
        server.redirects["/to-private"] = f"http://localhost:{ear.port}/secret"
        refused(
            lambda: ask(client, image(server.url + "/to-private")),
            400,
            "media_url_forbidden",
            f"{P1}.image_url.url",
        )
    assert ear.accepted == []


def test_local_files_without_roots_are_refused(plain_client: openai.OpenAI, root: Path) -> None:
    refused(
        lambda: ask(plain_client, image(f"file://{root}/photo.webp")),
        400,
        "local_media_forbidden",
        f"{P1}.image_url.url",
    )


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("{root}/../secret.png", "local_media_forbidden"),
        ("{root}/escape.png", "local_media_forbidden"),
        ("/etc/passwd", "local_media_forbidden"),
        ("{root}/missing.png", "local_media_not_found"),
        ("{root}/over-cap.png", "image_too_large"),
    ],
)
def test_local_files_outside_roots_or_over_the_cap(
    client: openai.OpenAI, root: Path, path: str, code: str
) -> None:
    url = "file://" + path.format(root=root)
    refused(lambda: ask(client, image(url)), 400, code, f"{P1}.image_url.url")


def test_local_file_at_the_cap(client: openai.OpenAI, root: Path) -> None:
    answered(ask(client, image(f"file://{root}/at-cap.png")))


def test_video_every_way(client: openai.OpenAI, server: MediaServer, root: Path) -> None:
    clip = video(seconds=2.0)
    two = answered(
        ask(client, video_url(data_uri(clip, "video/mp4")), extra_body={"video_max_frames": 2})
    )
    four = answered(ask(client, video_url(data_uri(clip, "video/mp4"))))  # 2 s at 2 fps
    # The frames go in as pictures, each counted.
    assert (two, four) == (asked_tokens(2), asked_tokens(4))
    assert answered(ask(client, video_url(server.url + "/clip.webm"))) == four
    assert answered(ask(client, video_url(f"file://{root}/clip.mp4"))) == four
    vllm = {"type": "video", "video": f"{root}/clip.mp4"}
    assert answered(ask(client, vllm, extra_body={"video_fps": 1.0})) == two


def test_video_refusals(client: openai.OpenAI, root: Path) -> None:
    clip = data_uri(video(seconds=1.0), "video/mp4")
    refused(
        lambda: ask(client, video_url(clip), model=NO_VIDEO),
        400,
        "video_not_supported",
        f"{P1}.video_url.url",
    )
    broken = data_uri(b"\x00" * 4096, "video/mp4")
    refused(lambda: ask(client, video_url(broken)), 400, "invalid_video", f"{P1}.video_url.url")
    refused(
        lambda: ask(client, {"type": "video", "video": "/etc/hostname"}),
        400,
        "local_media_forbidden",
        f"{P1}.video",
    )
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, video_url(clip), extra_body={"video_fps": 0})
    assert caught.value.body["param"] == "video_fps"  # type: ignore[index]
