"""The usage API's query parameters, read as OpenAI's usage API takes them.

Lists come repeated (``group_by=model&group_by=api_key_id``), with brackets
(``group_by[]=model``) or comma-separated; every mistake is a 400 naming the parameter.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from typing import cast

from litestar.datastructures import MultiDict

from gateway.errors import InvalidRequest
from gateway.usage.buckets import (
    WIDTH_S,
    WIDTHS,
    BadUsageQuery,
    BucketWidth,
    GroupField,
    UsageQuery,
    parse_key_id,
)

# The groups of the customer API; the admin API adds ``organization``.
CUSTOMER_GROUPS: tuple[GroupField, ...] = ("model", "api_key_id")
_INTEGER = re.compile(r"-?[0-9]{1,20}")


def _bad(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_value")


def _integer(params: MultiDict[str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not _INTEGER.fullmatch(raw.strip()):
        raise _bad(name, f"`{name}` must be an integer, not {raw[:40]!r}.")
    return int(raw)


def _list(params: MultiDict[str], name: str) -> list[str]:
    raw = [*params.getall(name, []), *params.getall(f"{name}[]", [])]
    return [item.strip() for value in raw for item in value.split(",") if item.strip()]


def _end_time(start: int, end: int | None, width_s: int) -> int:
    """``end_time``, or by default the end of the bucket now falls in."""
    if end is not None:
        return end
    now = time.time()
    if start > now:
        raise _bad("start_time", "`start_time` is in the future.")
    return start + max(1, -(-(int(now) + 1 - start) // width_s)) * width_s


def usage_query(
    params: MultiDict[str], org_id: int | None, groups: Collection[GroupField] = CUSTOMER_GROUPS
) -> UsageQuery:
    """The query the parameters ask for, on one organisation (``None``: every one)."""
    start = _integer(params, "start_time")
    if start is None:
        raise InvalidRequest(
            "Missing required parameter: `start_time` (Unix seconds).",
            param="start_time",
            code="missing_required_parameter",
        )
    width = params.get("bucket_width", "1d")
    if width not in WIDTH_S:
        raise _bad("bucket_width", f"`bucket_width` must be one of {', '.join(WIDTHS)}.")
    group_by = _list(params, "group_by")
    unknown = [name for name in group_by if name not in groups]
    if unknown:
        raise _bad(
            "group_by",
            f"Cannot group by {unknown[0][:40]!r}: `group_by` takes {', '.join(groups)}.",
        )
    key_ids: list[int] = []
    for value in _list(params, "api_key_ids"):
        key_id = parse_key_id(value)
        if key_id is None:
            raise _bad("api_key_ids", f"`api_key_ids`: {value[:40]!r} is not a key id (`key_…`).")
        key_ids.append(key_id)
    try:
        return UsageQuery(
            org_id=org_id,
            start_time=start,
            end_time=_end_time(start, _integer(params, "end_time"), WIDTH_S[width]),
            bucket_width=cast(BucketWidth, width),
            group_by=tuple(dict.fromkeys(cast(list[GroupField], group_by))),
            limit=_integer(params, "limit"),
            page=params.get("page"),
            models=tuple(_list(params, "models")),
            api_key_ids=tuple(key_ids),
        )
    except BadUsageQuery as exc:
        raise _bad(exc.param, exc.message) from None
