"""The admin CLI against SQLite and PostgreSQL: the key lifecycle, tiers, usage, db, bootstrap."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from gateway.admin import development_secret_warning, ensure_default_organisation
from gateway.admin.runner import schema_problem
from gateway.auth import Authenticator, InvalidApiKey
from gateway.cli import app
from gateway.db.engine import create_engine, session_factory
from gateway.db.revision import RevisionWatcher
from gateway.limits import LimitSet, TierCatalog
from gateway.settings import Settings
from gateway.usage import Usage, UsageRecorder


@pytest.fixture
def cli(database_url: str) -> Iterator[Any]:
    """Run `visiongate …` against this test's database; fail on a non-zero exit."""
    runner = CliRunner()
    env = {"VISIONGATE_DATABASE_URL": database_url, "COLUMNS": "200"}

    def invoke(*args: str, code: int = 0) -> Result:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    invoke("db", "upgrade")
    yield invoke


def as_json(result: Result) -> Any:
    """The JSON a `--json` command printed."""
    return json.loads(result.stdout)


def authenticate(url: str, secret: str) -> str:
    """The organisation a key authenticates as, or ``refused`` (a fresh worker's view)."""

    async def main() -> str:
        settings = Settings()
        engine = create_engine(settings, url)
        sessions = session_factory(engine)
        watcher = RevisionWatcher(sessions, settings.config_poll_interval_s)
        auth = Authenticator(sessions, watcher, settings)
        await watcher.poll()
        try:
            return (await auth.authenticate(f"Bearer {secret}")).org_name
        except InvalidApiKey:
            return "refused"
        finally:
            await auth.close()
            await engine.dispose()

    return asyncio.run(main())


def test_key_lifecycle(cli: Any, database_url: str) -> None:
    cli("orgs", "create", "acme", "--tier", "free")
    created = cli("keys", "create", "--org", "acme", "--name", "ci", "--expires-in", "30d")
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("vg_") and len(secret) == 46
    assert authenticate(database_url, secret) == "acme"

    [listed] = as_json(cli("keys", "list", "--org", "acme", "--json"))
    assert listed["label"] == "ci" and listed["state"] == "active"
    assert secret.startswith(listed["prefix"])
    assert secret not in cli("keys", "list").stdout

    rotated = cli("keys", "rotate", listed["prefix"])
    new_secret = rotated.stdout.strip().splitlines()[-1]
    assert authenticate(database_url, secret) == "refused"
    assert authenticate(database_url, new_secret) == "acme"

    [newest, old] = as_json(cli("keys", "list", "--json"))
    assert (newest["state"], old["state"]) == ("active", "revoked")
    revoked = as_json(cli("keys", "revoke", str(newest["id"]), "--json"))
    assert revoked["state"] == "revoked"
    assert authenticate(database_url, new_secret) == "refused"


def test_rotate_with_grace_keeps_the_old_key_for_a_while(cli: Any, database_url: str) -> None:
    cli("orgs", "create", "acme")
    secret = cli("keys", "create", "--org", "acme").stdout.strip().splitlines()[-1]
    created = as_json(cli("keys", "rotate", "1", "--grace", "1h", "--json"))
    assert authenticate(database_url, secret) == "acme"
    assert authenticate(database_url, created["secret"]) == "acme"


def test_organisations_and_tiers(cli: Any, database_url: str) -> None:
    cli("orgs", "create", "acme", "--tier", "developer")
    cli("orgs", "create", "acme", code=1)
    assert "no tier 'gold'" in cli("orgs", "create", "bolt", "--tier", "gold", code=1).output
    cli("tiers", "set", "gold", "--model", "vlm", "--rpm", "5", "--monthly-tokens", "1_000_000")
    cli("tiers", "set", "gold", "--model", "vlm", "--rpm", "unlimited", "--tpm", "9000")
    cli("orgs", "set-tier", "acme", "gold")
    [org] = as_json(cli("orgs", "list", "--json"))
    assert (org["name"], org["tier"]) == ("acme", "gold")
    tiers = {(row["tier"], row["model"]): row for row in as_json(cli("tiers", "list", "--json"))}
    gold = tiers[("gold", "vlm")]
    assert (gold["rpm"], gold["tpm"], gold["monthly_tokens"]) == (None, 9000, 1_000_000)
    assert tiers[("free", "*")]["rpm"] == 30
    cli("tiers", "set", "gold", "--rpm", "0", code=1)
    cli("tiers", "set", "gold", "--rpm", "many", code=2)

    async def catalog_view() -> tuple[LimitSet, LimitSet]:
        engine = create_engine(Settings(), database_url)
        sessions = session_factory(engine)
        catalog = TierCatalog(sessions, RevisionWatcher(sessions, 0.5))
        await catalog.reload()
        await engine.dispose()
        return catalog.limits_for("gold", "vlm"), catalog.limits_for("free", "any-model")

    gold_vlm, free_any = asyncio.run(catalog_view())
    assert gold_vlm == LimitSet(tpm=9000, monthly_tokens=1_000_000)
    assert free_any == LimitSet(
        rpm=30, rpd=1_000, tpm=30_000, tpd=500_000, concurrency=4, monthly_tokens=None
    )


def test_a_tier_newer_than_the_catalog_is_read_at_once(cli: Any, database_url: str) -> None:
    async def catalog_view() -> tuple[LimitSet, LimitSet]:
        engine = create_engine(Settings(), database_url)
        sessions = session_factory(engine)
        catalog = TierCatalog(sessions, RevisionWatcher(sessions, 0.5))
        await catalog.reload()
        # Created after the reload: the revision poll has not told this catalog yet.
        await asyncio.to_thread(cli, "tiers", "set", "tiny", "--model", "vlm", "--rpm", "1")
        stale = catalog.limits_for("tiny", "vlm")
        fresh = await catalog.limits("tiny", "vlm")
        await engine.dispose()
        return stale, fresh

    stale, fresh = asyncio.run(catalog_view())
    assert stale == LimitSet()  # what admission used to apply: unlimited
    assert fresh == LimitSet(rpm=1)


def test_usage_report(cli: Any, database_url: str) -> None:
    cli("orgs", "create", "acme")
    created = as_json(cli("keys", "create", "--org", "acme", "--json"))

    async def record() -> None:
        engine = create_engine(Settings(), database_url)
        recorder = UsageRecorder(session_factory(engine), Settings())
        recorder.start()
        for prompt in (10, 20):
            await recorder.record(
                Usage(
                    uuid.uuid4().hex,
                    1,
                    created["id"],
                    "vlm",
                    prompt,
                    5,
                    1,
                    0,
                    "completed",
                    datetime.now(UTC),
                    3.0,
                    9.0,
                )
            )
        await recorder.close()
        await engine.dispose()

    asyncio.run(record())
    [row] = as_json(cli("usage", "--org", "acme", "--json"))
    assert row == {
        "organisation": "acme",
        "model": "vlm",
        "requests": 2,
        "prompt_tokens": 30,
        "completion_tokens": 10,
        "images": 2,
        "video_frames": 0,
    }
    assert as_json(cli("usage", "--since", "2999-01-01", "--json")) == []


def test_db_commands(cli: Any) -> None:
    state = as_json(cli("db", "current", "--json"))
    assert state["current"] == state["head"] is not None
    cli("db", "downgrade", "base")
    assert as_json(cli("db", "current", "--json"))["current"] is None
    cli("db", "upgrade")
    assert as_json(cli("db", "current", "--json"))["current"] == state["head"]


def test_first_start_creates_a_default_organisation_once(cli: Any, database_url: str) -> None:
    settings = Settings(database_url=database_url)
    secret = asyncio.run(ensure_default_organisation(settings))
    assert secret is not None and secret.startswith("vg_")
    assert authenticate(database_url, secret) == "default"
    assert asyncio.run(ensure_default_organisation(settings)) is None
    [org] = as_json(cli("orgs", "list", "--json"))
    assert (org["name"], org["tier"], org["active_keys"]) == ("default", "free", 1)


def test_the_development_secret_is_flagged() -> None:
    assert development_secret_warning(Settings()) is not None
    assert development_secret_warning(Settings(key_secret="a-real-secret")) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("command", [("tiers", "list"), ("orgs", "create", "acme")])
def test_a_database_without_the_schema_is_named_without_a_traceback(
    cli: Any, command: tuple[str, ...]
) -> None:
    cli("db", "downgrade", "base")
    result = cli(*command, code=1)
    assert (
        result.output.strip()
        == "visiongate: the database has no schema: run `visiongate db upgrade`"
    )
    assert isinstance(result.exception, SystemExit)  # typer's Exit, not a database error


def test_an_older_schema_is_named(cli: Any, database_url: str) -> None:
    cli("db", "downgrade", "0001")
    problem = schema_problem(Settings(database_url=database_url))
    assert problem is not None and problem.endswith("run `visiongate db upgrade`")
    cli("db", "upgrade")
    assert schema_problem(Settings(database_url=database_url)) is None


def test_admin_tokens_are_shown_once_and_revocable(cli: Any, database_url: str) -> None:
    created = cli("admin-tokens", "create", "--name", "billing")
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("vgadm_") and len(secret) == len("vgadm_") + 43
    reader = as_json(cli("admin-tokens", "create", "--name", "dashboards", "--read-only", "--json"))
    assert reader["read_only"] is True and reader["secret"].startswith(reader["prefix"])

    listed = as_json(cli("admin-tokens", "list", "--json"))
    assert [(row["name"], row["read_only"], row["state"]) for row in listed] == [
        ("billing", False, "active"),
        ("dashboards", True, "active"),
    ]
    table = cli("admin-tokens", "list").stdout
    assert secret not in table and reader["secret"] not in table
    # An admin token is not an API key: the key authenticator refuses it without a lookup.
    assert authenticate(database_url, secret) == "refused"

    revoked = as_json(cli("admin-tokens", "revoke", listed[0]["prefix"], "--json"))
    assert (revoked["id"], revoked["state"]) == (listed[0]["id"], "revoked")
    assert "no admin token" in cli("admin-tokens", "revoke", "999", code=1).output
    cli("admin-tokens", "create", "--name", "", code=1)


def test_deleting_an_organisation(cli: Any, database_url: str) -> None:
    cli("orgs", "create", "acme")
    secret = cli("keys", "create", "--org", "acme").stdout.strip().splitlines()[-1]
    assert "active key" in cli("orgs", "delete", "acme", code=1).output
    deleted = as_json(cli("orgs", "delete", "acme", "--force", "--json"))
    assert (deleted["name"], deleted["revoked_keys"]) == ("acme", 1)
    assert authenticate(database_url, secret) == "refused"
    assert as_json(cli("orgs", "list", "--json")) == []
    assert "deleted organisation" in cli("orgs", "create", "acme", code=1).output
    assert "no organisation 'acme'" in cli("keys", "create", "--org", "acme", code=1).output
