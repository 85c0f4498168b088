"""Local media files (``file:///abs/path`` or a bare absolute path), only under allowed roots.

As MAX documents it: with no roots configured every local path is refused; otherwise the
real path, symlinks resolved, must lie inside one of the roots, and the file may not exceed
its size cap. The file opened is checked again after opening, so a symlink swapped in
between the check and the open cannot lead outside the roots.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit


class LocalMediaError(Exception):
    """A local path cannot be read; ``code`` names the rule."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def is_local(url: str) -> bool:
    """True for a ``file:`` URL or a bare absolute path."""
    return url[:5].lower() == "file:" or url.startswith("/")


def local_path(url: str) -> str:
    """The absolute path a ``file:///...`` URL or a bare absolute path names."""
    if url.startswith("/"):
        return url
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise LocalMediaError(
            "A local media URL must be file:///absolute/path (no host, query or fragment).",
            "invalid_media_url",
        )
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise LocalMediaError("A local media path must be absolute.", "invalid_media_url")
    return path


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def read_local(url: str, roots: Sequence[Path], max_bytes: int) -> bytes:
    """The bytes of the regular file ``url`` names, if it lies inside ``roots`` (blocking)."""
    if not roots:
        raise LocalMediaError(
            "Local files are not enabled on this service (no allowed media roots).",
            "local_media_forbidden",
        )
    path = local_path(url)
    if "\0" in path:
        raise LocalMediaError("A local media path cannot contain NUL.", "invalid_media_url")
    real_roots = [os.path.realpath(root) for root in roots]
    # Decided on the real path, before anything else, so that a path outside the roots gets
    # the same answer whether it exists or not.
    real = os.path.realpath(path)
    if not _inside(real, real_roots):
        raise LocalMediaError(
            "The local path is outside the allowed media roots.", "local_media_forbidden"
        )
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LocalMediaError(
            "The local media file does not exist.", "local_media_not_found"
        ) from None
    except OSError as exc:
        raise LocalMediaError(
            f"The local media file cannot be opened ({exc.strerror}).", "local_media_forbidden"
        ) from None
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}") if os.path.isdir("/proc/self/fd") else real
        if not _inside(opened, real_roots):
            raise LocalMediaError(
                "The local path is outside the allowed media roots.", "local_media_forbidden"
            )
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LocalMediaError("The local media path is not a file.", "local_media_forbidden")
        if info.st_size > max_bytes:
            raise LocalMediaError(
                f"The local media file is {info.st_size} bytes; at most {max_bytes}.",
                "media_too_large",
            )
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # the file grew after fstat
        raise LocalMediaError(f"The local media file exceeds {max_bytes} bytes.", "media_too_large")
    return data
