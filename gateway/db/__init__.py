"""SQL storage: models, the async engine, migrations, the config revision."""

from gateway.db.engine import create_engine, database_url, session_factory
from gateway.db.models import ApiKey, Base, Organisation, Tier, TierLimit, UsageRecord

__all__ = [
    "ApiKey",
    "Base",
    "Organisation",
    "Tier",
    "TierLimit",
    "UsageRecord",
    "create_engine",
    "database_url",
    "session_factory",
]
