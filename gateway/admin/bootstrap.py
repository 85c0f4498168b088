"""First start: on an empty database, a ``default`` organisation and one key for it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.admin.service import create_key, create_organisation
from gateway.db.engine import create_engine, session_factory
from gateway.db.models import Organisation
from gateway.settings import DEV_KEY_SECRET, Settings

DEFAULT_ORGANISATION = "default"
DEFAULT_TIER = "free"


async def ensure_default_organisation(settings: Settings) -> str | None:
    """When no organisation exists, create ``default`` (free tier) with a key.

    Returns the key's secret, to print once; None when the database already had an
    organisation. Run it after migrating, before starting workers.
    """
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            if await session.scalar(select(Organisation.id).limit(1)) is not None:
                return None
            await create_organisation(session, DEFAULT_ORGANISATION, DEFAULT_TIER)
            created = await create_key(
                session,
                settings.key_secret.get_secret_value(),
                DEFAULT_ORGANISATION,
                label="created by serve",
            )
        return created.secret
    except IntegrityError:
        return None  # another process created it first
    finally:
        await engine.dispose()


def development_secret_warning(settings: Settings) -> str | None:
    """The warning to print at start while keys are hashed with the development secret."""
    if settings.key_secret.get_secret_value() != DEV_KEY_SECRET:
        return None
    return (
        "VISIONGATE_KEY_SECRET is not set: API keys are hashed with the public development "
        "secret. Set it (and keep it) in production; changing it invalidates every key."
    )
