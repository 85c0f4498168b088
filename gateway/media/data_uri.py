"""``data:`` URIs (RFC 2397) carrying base64 media."""

from __future__ import annotations

import binascii

import pybase64


class DataURIError(ValueError):
    """The URI is not a base64 ``data:`` URI of the expected kind."""


def is_data_uri(url: str) -> bool:
    """True for a ``data:`` URI."""
    return url[:5].lower() == "data:"


def decode_data_uri(url: str, kind: str) -> tuple[str, bytes]:
    """The media type and bytes of ``data:<kind>/<subtype>[;params];base64,<data>``.

    The base64 is decoded once, strictly (RFC 4648's alphabet and padding, nothing else), by
    pybase64's SIMD decoder: for a 60 KiB image about 5 µs, against the standard library's 160.
    """
    header, comma, payload = url.partition(",")
    if not comma:
        raise DataURIError("a data: URI needs a comma before its data")
    media_type, *params = header[5:].split(";")
    media_type = media_type.strip().lower()
    if not media_type.startswith(f"{kind}/"):
        raise DataURIError(f"expected a data:{kind}/... URI, got data:{media_type or '(none)'}")
    if "base64" not in (p.strip().lower() for p in params):
        raise DataURIError("only base64-encoded data: URIs are accepted")
    try:
        data = pybase64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DataURIError(f"the base64 data is invalid ({exc})") from exc
    if not data:
        raise DataURIError("the data: URI is empty")
    return media_type, data
