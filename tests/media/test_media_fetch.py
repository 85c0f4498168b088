"""The SSRF-safe fetcher, driven directly: what it refuses never gets a connection."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from gateway.media import fetch
from tests.support.media import listener, media_server, png_bomb

POLICY = fetch.FetchPolicy(connect_timeout_s=2.0, total_timeout_s=10.0)


async def _get(url: str, policy: fetch.FetchPolicy = POLICY, cap: int = 1 << 20) -> bytes:
    async with fetch.client(policy) as http:
        return await fetch.fetch(http, url, policy, cap)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "2130706433",
        "127.1",
        "LOCALHOST.",
    ],
)
async def test_loopback_in_any_spelling_is_refused_without_a_connection(host: str) -> None:
    with listener("127.0.0.1") as ear:
        with pytest.raises(fetch.Forbidden) as caught:
            await _get(f"http://{host}:{ear.port}/image.png")
        assert caught.value.code == "media_url_forbidden"
    assert ear.accepted == []


async def test_ipv6_loopback_is_refused_without_a_connection() -> None:
    with listener("::1") as ear, pytest.raises(fetch.Forbidden):
        await _get(f"http://[::1]:{ear.port}/")
    assert ear.accepted == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[fec0::1]/",  # site-local, deprecated but still routed inside a site
        "http://[feff:ffff::1]/",  # the top of fec0::/10
        "http://224.0.0.1/",
        "http://[2002:7f00:1::]/",  # 6to4 form of 127.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 form of 169.254.169.254
        "https://100.64.0.1/",
    ],
)
async def test_non_public_addresses_are_refused(url: str) -> None:
    with pytest.raises(fetch.Forbidden):
        await _get(url)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/a.png", "file:///etc/passwd", "http://user:pw@example.com/a.png"],
)
async def test_schemes_and_credentials_are_refused(url: str) -> None:
    with pytest.raises(fetch.Forbidden):
        await _get(url)


def test_embedded_ipv4_forms() -> None:
    for text, public in [
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("2002:5db8:d822::", True),  # 6to4 of a public address
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("::ffff:93.184.216.34", False),  # mapped: the socket would talk IPv4 unchecked
        ("::", False),
        ("fec0::1", False),  # site-local
        ("fec0::5db8:d822", False),  # site-local, whatever its low bits
        ("255.255.255.255", False),
    ]:
        assert fetch.is_public(ipaddress.ip_address(text)) is public, text


async def test_allowed_private_host_is_fetched_and_pinned() -> None:
    policy = fetch.FetchPolicy(allowed_private_hosts=frozenset({"127.0.0.1"}))
    with media_server() as server:
        server.files["/a.png"] = png_bomb(4, 4)
        assert await _get(server.url + "/a.png", policy) == server.files["/a.png"]
        # Allowed by the name in the URL, not by the address it resolves to.
        with pytest.raises(fetch.Forbidden):
            await _get(f"http://localhost:{server.port}/a.png", policy)


async def test_redirect_to_a_forbidden_host_is_refused_without_a_connection() -> None:
    policy = fetch.FetchPolicy(allowed_private_hosts=frozenset({"127.0.0.1"}))
    with media_server() as server, listener("127.0.0.1") as ear:
        server.redirects["/hop"] = f"http://localhost:{ear.port}/secret"
        with pytest.raises(fetch.Forbidden):
            await _get(server.url + "/hop", policy)
        assert server.requests == ["/hop"]
    assert ear.accepted == []


async def test_redirects_are_followed_up_to_the_limit() -> None:
    policy = fetch.FetchPolicy(allowed_private_hosts=frozenset({"127.0.0.1"}), max_redirects=5)
    with media_server() as server:
        server.files["/end"] = b"payload"
        for i in range(6):
            server.redirects[f"/r{i}"] = f"/r{i + 1}" if i < 5 else "/end"
        assert await _get(server.url + "/r1", policy) == b"payload"  # 5 redirects
        with pytest.raises(fetch.FetchError) as caught:
            await _get(server.url + "/r0", policy)  # 6 redirects
        assert caught.value.code == "media_fetch_failed"


async def test_host_allowlist() -> None:
    policy = fetch.FetchPolicy(
        allowed_hosts=frozenset({"*.example.org"}), allowed_private_hosts=frozenset({"127.0.0.1"})
    )
    with media_server() as server:
        server.files["/a"] = b"x"
        with pytest.raises(fetch.Forbidden, match="not on this service's list"):
            await _get(server.url + "/a", policy)
    fetch.check_url(httpx.URL("https://img.example.org/a.png"), policy)


async def test_reading_stops_at_the_cap() -> None:
    policy = fetch.FetchPolicy(allowed_private_hosts=frozenset({"127.0.0.1"}))
    with media_server() as server:
        server.files["/at"] = b"a" * 1000
        server.files["/over"] = b"a" * 1001
        assert len(await _get(server.url + "/at", policy, cap=1000)) == 1000
        with pytest.raises(fetch.TooLarge):
            await _get(server.url + "/over", policy, cap=1000)
        # No Content-Length and no end: only counting can stop it, and it does.
        with pytest.raises(fetch.TooLarge):
            await _get(server.url + "/endless", policy, cap=1 << 20)
