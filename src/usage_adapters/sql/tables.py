"""The PHP app's tables, as far as usage-sync reads and writes them.

The definitions mirror the app's Laravel migrations so that `db init` can
create a standalone database with the same tables and columns; against the
app's own database they are only used to build queries, never to alter it.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY.
_Id = BigInteger().with_variant(Integer(), "sqlite")


def _timestamps() -> list[Column[object]]:
    return [Column("created_at", DateTime), Column("updated_at", DateTime)]


users = Table(
    "users",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("email", String(255), nullable=False, unique=True),
    Column("email_verified_at", DateTime),
    Column("password", String(255), nullable=False),
    Column("remember_token", String(100)),
    *_timestamps(),
)

settings = Table(
    "settings",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("value", Text),
    *_timestamps(),
)

panels = Table(
    "panels",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("url", String(255), nullable=False),
    Column("panel_type", String(32), nullable=False, server_default="marzban"),
    Column("username", String(255)),
    Column("password", Text),
    Column("api_token", Text),
    Column("extra", JSON),
    Column("is_active", Boolean, nullable=False, server_default="1"),
    *_timestamps(),
)

resellers = Table(
    "resellers",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), unique=True),
    Column("type", String(32), nullable=False),
    Column("status", String(32), nullable=False, server_default="active"),
    Column("username_prefix", String(255)),
    Column("panel_id", BigInteger, ForeignKey("panels.id", ondelete="SET NULL")),
    Column("config_limit", Integer),
    Column("traffic_total_bytes", BigInteger),
    Column("traffic_used_bytes", BigInteger, nullable=False, server_default="0"),
    Column("admin_forgiven_bytes", BigInteger, nullable=False, server_default="0"),
    Column("window_starts_at", DateTime),
    Column("window_ends_at", DateTime),
    Column("marzneshin_allowed_service_ids", JSON),
    Column("eylandoo_allowed_node_ids", JSON),
    Column("settings", JSON),
    *_timestamps(),
)

reseller_configs = Table(
    "reseller_configs",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column(
        "reseller_id",
        BigInteger,
        ForeignKey("resellers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("external_username", String(255), nullable=False),
    Column("comment", String(200)),
    Column("prefix", String(50)),
    Column("custom_name", String(100)),
    Column("traffic_limit_bytes", BigInteger, nullable=False),
    Column("connections", Integer),
    Column("usage_bytes", BigInteger, nullable=False, server_default="0"),
    Column("expires_at", DateTime, nullable=False),
    Column("status", String(32), nullable=False, server_default="active"),
    Column("panel_type", String(32), nullable=False),
    Column("panel_user_id", String(255)),
    Column("subscription_url", String(255)),
    Column("panel_id", BigInteger, ForeignKey("panels.id", ondelete="SET NULL")),
    Column("created_by", BigInteger, ForeignKey("users.id")),
    Column("disabled_at", DateTime),
    Column("meta", JSON),
    Column("deleted_at", DateTime),
    *_timestamps(),
    Index("reseller_configs_reseller_id_status_index", "reseller_id", "status"),
)

reseller_config_events = Table(
    "reseller_config_events",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column(
        "reseller_config_id",
        BigInteger,
        ForeignKey("reseller_configs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("type", String(255), nullable=False),
    Column("meta", JSON),
    *_timestamps(),
)

audit_logs = Table(
    "audit_logs",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("action", String(255), nullable=False, index=True),
    Column("actor_type", String(255)),
    Column("actor_id", BigInteger),
    Column("target_type", String(255), nullable=False),
    Column("target_id", BigInteger),
    Column("reason", String(255)),
    Column("request_id", String(255)),
    Column("ip", String(255)),
    Column("user_agent", String(255)),
    Column("meta", JSON),
    *_timestamps(),
    Index("audit_logs_target_type_target_id_index", "target_type", "target_id"),
    Index("audit_logs_created_at_index", "created_at"),
)

# Columns added after the app's c696ca1 schema; the store checks for them.
OPTIONAL_COLUMNS = {("resellers", "admin_forgiven_bytes")}
