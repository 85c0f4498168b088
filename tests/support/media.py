"""Real media for the tests: images of every accepted format, videos, an HTTP server."""

from __future__ import annotations

import base64
import io
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import numpy as np
from PIL import Image


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photograph-like RGB image: smooth gradients with sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            128 + 100 * np.sin(x / (width / 7.0)),
            128 + 100 * np.cos(y / (height / 5.0)),
            128 + 80 * np.sin((x + y) / ((width + height) / 9.0)),
        ],
        axis=-1,
    )
    noise = rng.normal(0, 8, (height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """``image`` encoded as ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG of random pixels (barely compressible: bytes ≈ 3 × pixels)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "PNG")


def animated_gif() -> bytes:
    """A three-frame GIF."""
    frames = [Image.new("RGB", (32, 24), color) for color in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int, corrupt_pixels: bool = False) -> bytes:
    """A grey PNG of ``width`` × ``height``: a few kilobytes however many pixels it claims.

    With ``corrupt_pixels`` its IDAT is garbage, so anyone who decodes it fails: refusing it
    for its size proves the decision came before decoding.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    if corrupt_pixels:
        pixels = b"\xde\xad\xbe\xef" * 64
    else:
        compressor = zlib.compressobj(9)
        row = b"\x00" + b"\x80" * width
        pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels)
        + png_chunk(b"IEND", b"")
    )


def padded(data: bytes, size: int) -> bytes:
    """``data`` (an image) followed by zeros up to exactly ``size`` bytes; decoders ignore them."""
    assert len(data) <= size
    return data + b"\x00" * (size - len(data))


def video(
    seconds: float = 3.0, rate: int = 10, size: tuple[int, int] = (64, 48), fmt: str = "mp4"
) -> bytes:
    """A real H.264 (or VP9 for webm) video encoded with PyAV, each frame a different colour."""
    codec = "libvpx-vp9" if fmt == "webm" else "libx264"
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(round(seconds * rate)):
            pixels = np.full((size[1], size[0], 3), (i * 9) % 256, dtype=np.uint8)
            pixels[:, : size[0] // 2, 1] = 255 - (i * 9) % 256
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def data_uri(data: bytes, media_type: str) -> str:
    """A base64 ``data:`` URI."""
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def image_bytes(seed: int, size: tuple[int, int] = (48, 40), fmt: str = "PNG") -> bytes:
    """A random RGB image, encoded."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), fmt)


def image_data_uri(seed: int = 0, size: tuple[int, int] = (48, 40)) -> str:
    """A random PNG as a ``data:image/png;base64,`` URI."""
    return data_uri(image_bytes(seed, size), "image/png")


@dataclass
class MediaServer:
    """A real HTTP server on 127.0.0.1: ``files`` by path, redirects, and an endless body."""

    files: dict[str, bytes] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def media_server() -> Iterator[MediaServer]:
    """Serve a MediaServer until the block ends."""
    state = MediaServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path in state.redirects:
                self.send_response(302)
                self.send_header("location", state.redirects[self.path])
                self.send_header("content-length", "0")
                self.end_headers()
            elif self.path == "/endless":
                # No Content-Length: only counting bytes can stop this.
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.end_headers()
                block = b"\x89PNG" + b"\x00" * 65_532
                try:
                    while True:
                        self.wfile.write(block)
                except OSError:
                    pass
                self.close_connection = True
            elif self.path in state.files:
                body = state.files[self.path]
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                with suppress(OSError):
                    self.wfile.write(body)
            else:
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Listener:
    """A TCP listener that only counts the connections it accepts."""

    port: int
    family: int
    accepted: list[object] = field(default_factory=list)


@contextmanager
def listener(host: str = "127.0.0.1") -> Iterator[Listener]:
    """A listener on ``host`` (IPv4 or IPv6) that records every connection made to it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(16)
    sock.settimeout(0.1)
    state = Listener(port=sock.getsockname()[1], family=family)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            state.accepted.append(peer)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join()
        sock.close()


def png16_rgba(width: int, height: int) -> bytes:
    """A 16-bit RGBA PNG of ``width`` × ``height`` whose rows are all one gradient.

    Written by hand (Pillow cannot save 16-bit RGBA). Every row after the first is filtered
    "Up" (all zeros), which deflate shrinks about a thousandfold: even 5760 × 5760 (265 MB of
    pixels) is a few hundred KB.
    """
    header = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    ramp = np.linspace(0, 65535, width * 4, dtype=np.float64).astype(">u2")
    same = b"\x02" + bytes(len(ramp) * 2)
    compressor = zlib.compressobj(9)
    rows = [compressor.compress(b"\x00" + ramp.tobytes())]
    rows.extend(compressor.compress(same) for _ in range(height - 1))
    pixels = b"".join(rows) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels)
        + png_chunk(b"IEND", b"")
    )


def repeated_video(seconds: float, rate: int, size: tuple[int, int], gop: int) -> bytes:
    """An H.264 MP4 of ``seconds`` × ``rate`` frames, cheap to make however long it is.

    One keyframe and one P-frame are encoded once; the stream is the keyframe followed by
    ``gop - 1`` copies of the P-frame packet, over and over. A decoder must still decode
    every frame from a keyframe on, so with a huge ``gop`` (one keyframe) reaching the last
    second means decoding the whole video: the worst case for sampling frames.
    """
    encoder = av.CodecContext.create("libx264", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height = size
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, rate)
    encoder.options = {"preset": "ultrafast", "bframes": "0", "g": "1000000"}
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    pixels = np.stack([x * 255 // size[0], y * 255 // size[1], (x + y) % 256], -1)
    frame = av.VideoFrame.from_ndarray(pixels.astype(np.uint8), format="rgb24")
    frame = frame.reformat(format="yuv420p")
    packets = []
    for pts in range(3):
        frame.pts = pts
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    key, delta = bytes(packets[0]), bytes(packets[1])
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("h264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.extradata = encoder.extradata
        for i in range(round(seconds * rate)):
            packet = av.Packet(key if i % gop == 0 else delta)
            packet.pts = packet.dts = i
            packet.time_base = Fraction(1, rate)
            packet.is_keyframe = i % gop == 0
            packet.stream = stream
            container.mux(packet)
    return buffer.getvalue()
