"""A real browser for the playground's tests: Debian's chromium, driven by Playwright.

Playwright's own browser download cannot work on these machines, so the tests launch the
distribution's chromium, installing it with apt-get on a fresh machine (CI runs as root).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.processes import GatewayProcess, visiongate

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags chromium keeps trying to reach Google's services,
# and on a closed network those attempts are refused en masse.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
APT_TIMEOUT_S = 900
# Generous for a loaded 2-core machine; a passing test never waits this long.
EXPECT_TIMEOUT_MS = 20_000


def _apt_get(*args: str) -> None:
    result = subprocess.run(
        ["apt-get", *args],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True,
        text=True,
        timeout=APT_TIMEOUT_S,
    )
    if result.returncode != 0:
        pytest.fail(f"apt-get {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr}")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed with apt-get when it is missing and we are root."""
    if not CHROMIUM.exists():
        if os.geteuid() != 0:
            pytest.fail(
                f"{CHROMIUM} is missing and only root can install it: "
                "run `apt-get install -y chromium` (Debian's package) and try again."
            )
        _apt_get("update")
        _apt_get("install", "-y", "chromium")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    """One headless chromium per test module."""
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser, gateway: GatewayProcess) -> Iterator[Page]:
    """The playground in a fresh browser context (empty localStorage), failing on any JS error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(gateway.url + "/playground")
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the page raised: {errors}"


@pytest.fixture(scope="session")
def free_key(api_key: str) -> str:
    """A key of a free-tier organisation: its limits, unlike enterprise's, send headers."""
    visiongate("orgs", "create", "playground", "--tier", "free")
    return visiongate("keys", "create", "--org", "playground").splitlines()[-1]


@pytest.fixture(scope="session")
def one_rpm_key(api_key: str) -> str:
    """A key whose tier allows one request per minute, to meet a 429."""
    visiongate("tiers", "set", "playground-one-rpm", "--model", "*", "--rpm", "1")
    visiongate("orgs", "create", "playground-limited", "--tier", "playground-one-rpm")
    return visiongate("keys", "create", "--org", "playground-limited").splitlines()[-1]
