"""The playground's Usage tab in a real browser: the last 7 and 30 days drawn from
/v1/organization/usage, and the limits from /v1/organization/limits."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from gateway.db.engine import create_engine, session_factory
from gateway.db.models import ApiKey, Organisation
from gateway.settings import Settings
from tests.support.chat import MODEL
from tests.support.processes import visiongate
from tests.support.usage import record_all, usage_at

# The first test may install chromium (tests/playground/conftest.py) before it starts.
pytestmark = pytest.mark.timeout(900)

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
OTHER = "visiongate/retired-model"  # a model no longer served still has its usage shown
DAY = 86_400


async def _history(secret: str) -> None:
    """Usage rows of the key's organisation, 1, 3 and 20 days ago, in the session database."""
    engine = create_engine(Settings())
    try:
        sessions = session_factory(engine)
        async with sessions() as session:
            key = await session.scalar(select(ApiKey).where(ApiKey.prefix == secret[:11]))
            assert key is not None
        today = time.time() // DAY * DAY + 3_600
        await record_all(
            sessions,
            [usage_at(key.org_id, key.id, today - DAY, model=MODEL) for _ in range(3)]
            + [usage_at(key.org_id, key.id, today - 3 * DAY, model=OTHER, images=2)]
            + [usage_at(key.org_id, key.id, today - 3 * DAY + 60, model=OTHER)]
            + [usage_at(key.org_id, key.id, today - 20 * DAY, model=MODEL) for _ in range(5)],
        )
        async with sessions() as session:
            org = await session.get(Organisation, key.org_id)
            assert org is not None and org.tier_name == "free"
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def usage_key(api_key: str) -> str:
    """A free-tier key whose organisation has usage on known days."""
    visiongate("orgs", "create", "playground-usage", "--tier", "free")
    secret = visiongate("keys", "create", "--org", "playground-usage").splitlines()[-1]
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _history(secret)).result()
    return secret


def utc_day(seconds: float) -> str:
    """``YYYY-MM-DD`` of a Unix time, in UTC (the usage API's days)."""
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def segment(page: Page, chart: str, day: str, model: str) -> str:
    """The value the chart's bar of ``day`` shows for ``model``."""
    found = page.locator(f"#{chart} rect[data-day='{day}'][data-model='{model}']")
    expect(found).to_have_count(1)
    return found.get_attribute("data-value") or ""


def totals(page: Page, model: str) -> list[str]:
    """The totals table's row for ``model``: requests, input, output, images, video frames."""
    return page.locator(f"#usage-totals th:text-is('{model}') ~ td").all_inner_texts()


def test_usage_tab_draws_the_last_7_and_30_days_and_the_limits(page: Page, usage_key: str) -> None:
    page.fill("#api-key", usage_key)
    page.click("#save-key")
    expect(page.locator("#model")).to_have_value(MODEL)
    # One chat today, through the page, so today's bar holds a real request.
    page.fill("#max-tokens", "4")
    page.fill("#prompt", "Hello")
    page.click("#send")
    expect(page.locator("#usage")).to_contain_text("finish reason")
    prompt = int(page.locator("#usage dt:text-is('prompt tokens') + dd").inner_text())
    completion = int(page.locator("#usage dt:text-is('completion tokens') + dd").inner_text())

    with page.expect_response("**/v1/organization/limits") as limits_call:
        page.click("#tab-usage")
    assert limits_call.value.status == 200
    expect(page.locator("#usage-view")).to_be_visible()
    expect(page.locator("#chat-view")).to_be_hidden()
    bars = page.locator("#requests-chart g.bar")
    expect(bars).to_have_count(7)
    expect(page.locator("#tokens-chart g.bar")).to_have_count(7)
    now = time.time()
    assert bars.last.get_attribute("data-day") in (utc_day(now), utc_day(now - 60))
    yesterday = utc_day(time.time() // DAY * DAY - DAY + 3_600)
    three_days_ago = utc_day(time.time() // DAY * DAY - 3 * DAY + 3_600)
    assert segment(page, "requests-chart", yesterday, MODEL) == "3"
    assert segment(page, "requests-chart", three_days_ago, OTHER) == "2"
    assert segment(page, "tokens-chart", yesterday, MODEL) == str(3 * (10 + 5))
    expect(page.locator("#usage-legend li")).to_have_text([MODEL, OTHER])
    # Requests, input tokens, output tokens, images, frames: three rows and today's chat.
    assert totals(page, MODEL) == ["4", str(30 + prompt), str(15 + completion), "0", "0"]
    assert totals(page, OTHER) == ["2", "20", "10", "2", "0"]
    assert totals(page, "total")[0] == "6"
    # The free tier's limits (docs/admin.md), with today's request taken off the day's.
    rpd = page.locator("#limits-table tr[data-limit='rpd']")
    expect(rpd.locator(".limit")).to_have_text("1,000")
    assert int(rpd.locator(".remaining").inner_text().replace(",", "")) < 1_000
    tpm = page.locator("#limits-table tr[data-limit='tpm']")
    expect(tpm.locator(".limit")).to_have_text("30,000")
    expect(page.locator("#limits-tier")).to_have_text("Organisation playground-usage, tier free.")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "playground-usage.png", full_page=True)

    page.check("input[name='usage-range'][value='30']")
    expect(bars).to_have_count(30)
    twenty_days_ago = utc_day(time.time() // DAY * DAY - 20 * DAY + 3_600)
    assert segment(page, "requests-chart", twenty_days_ago, MODEL) == "5"
    expect(page.locator("#usage-totals tr.total td").first).to_have_text("11")


def test_usage_tab_without_a_key_or_with_a_wrong_one(page: Page) -> None:
    page.click("#tab-usage")
    expect(page.locator("#usage-status")).to_contain_text("Enter an API key")
    page.fill("#api-key", "vg_wrong")
    page.click("#save-key")
    page.click("#usage-refresh")
    expect(page.locator("#usage-error-title")).to_have_text(
        "HTTP 401 · invalid_request_error · invalid_api_key"
    )
    expect(page.locator("#usage-error-message")).to_have_text("Invalid API Key")
