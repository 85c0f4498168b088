"""Usage buckets as CSV: one row per bucket and group, a header naming the columns."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, datetime

from gateway.usage.buckets import UsageBucket

COLUMNS = (
    "start_time",
    "end_time",
    "start_time_iso",
    "organization",
    "model",
    "api_key_id",
    "num_model_requests",
    "input_tokens",
    "output_tokens",
    "images",
    "video_frames",
)


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def usage_csv(buckets: Iterable[UsageBucket]) -> str:
    """The buckets' results as CSV; a bucket without usage has no row, an ungrouped field is
    empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for bucket in buckets:
        for result in bucket.results:
            organization = result.organization if isinstance(result.organization, str) else ""
            writer.writerow(
                (
                    bucket.start_time,
                    bucket.end_time,
                    _iso(bucket.start_time),
                    organization,
                    result.model or "",
                    result.api_key_id or "",
                    result.num_model_requests,
                    result.input_tokens,
                    result.output_tokens,
                    result.images,
                    result.video_frames,
                )
            )
    return out.getvalue()
