"""The original-app database fixtures work the same on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from original_rows import (
    fetch_row,
    insert_config,
    insert_panel,
    insert_reseller,
    insert_setting,
    insert_user,
    php_json_encode,
)
from original_schema import (
    OriginalDatabase,
    apply_head_additions,
    apply_original_schema,
    statements,
)
from sqlalchemy import (
    Connection,
    Text,
    cast,
    column,
    create_engine,
    false,
    func,
    inspect,
    select,
    table,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

ORIGINAL_TABLES = {"users", "settings", "panels", "resellers", "reseller_configs"}

EXPECTED_COLUMNS = {
    "users": {
        "id", "name", "email", "email_verified_at", "password", "remember_token",
        "created_at", "updated_at",
    },
    "settings": {"id", "key", "value", "created_at", "updated_at", "xui_link_type"},
    "panels": {
        "id", "name", "url", "panel_type", "username", "password", "api_token", "extra",
        "is_active", "created_at", "updated_at",
    },
    "resellers": {
        "id", "user_id", "type", "status", "username_prefix", "panel_id", "config_limit",
        "traffic_total_bytes", "traffic_used_bytes", "window_starts_at", "window_ends_at",
        "marzneshin_allowed_service_ids", "eylandoo_allowed_node_ids", "settings",
        "created_at", "updated_at",
    },
    "reseller_configs": {
        "id", "reseller_id", "external_username", "comment", "prefix", "custom_name",
        "traffic_limit_bytes", "connections", "usage_bytes", "expires_at", "status",
        "panel_type", "panel_user_id", "subscription_url", "panel_id", "created_by",
        "disabled_at", "meta", "deleted_at", "created_at", "updated_at",
    },
}  # fmt: skip

HEAD_RESELLER_COLUMNS = {
    "admin_forgiven_bytes", "billing_type", "wallet_balance", "wallet_price_per_gb",
}  # fmt: skip

META_TEXT = '{"settled_usage_bytes":1234,"last_reset_at":"2025-11-04 10:00:00"}'


def columns(db: OriginalDatabase, table_name: str) -> set[str]:
    """The column names of `table_name` in `db`.

    Read from a query, not `inspect().get_columns()`: SQLAlchemy warns that it cannot
    reflect SQLite's `tinyint(1)` (panels.is_active), and warnings are errors here.
    """
    query = select(text("*")).select_from(table(table_name)).where(false())
    with db.engine.connect() as connection:
        return set(connection.execute(query).keys())


def json_text(db: OriginalDatabase, table_name: str, column_name: str, row_id: int) -> str | None:
    """A JSON column's stored text (psycopg would otherwise hand back parsed JSON)."""
    query = (
        select(cast(column(column_name), Text))
        .select_from(table(table_name))
        .where(column("id") == row_id)
    )
    with db.engine.connect() as connection:
        value = connection.execute(query).scalar_one()
    return None if value is None else str(value)


def count(connection: Connection, table_name: str) -> int:
    """The number of rows in `table_name`."""
    query = select(func.count()).select_from(table(table_name))
    return int(connection.execute(query).scalar_one())


class TestFreshDatabase:
    """Each test gets its own new database holding the c696ca1 schema."""

    def test_url_names_a_new_database(self, original_db: OriginalDatabase) -> None:
        """The URL points at this test's own database: a tmp file or a usync_ database."""
        if original_db.backend == "sqlite":
            assert original_db.url == f"sqlite:///{original_db.name}"
            assert Path(original_db.name).name == "app.sqlite"
        else:
            assert original_db.name.startswith("usync_")
            assert original_db.url.endswith(f"/{original_db.name}")
        assert original_db.head is False

    def test_dialect_matches_the_engine(self, original_db: OriginalDatabase) -> None:
        """The dialect attribute is SQLAlchemy's name for the engine's dialect."""
        expected = {"sqlite": "sqlite", "mariadb": "mysql", "postgresql": "postgresql"}
        assert original_db.dialect == expected[original_db.backend]
        assert original_db.engine.dialect.name == original_db.dialect

    def test_url_opens_the_same_database(self, original_db: OriginalDatabase) -> None:
        """A new engine built from the URL sees the fixture's tables and rows."""
        user_id = insert_user(original_db.engine)
        engine = create_engine(original_db.url)
        try:
            assert set(inspect(engine).get_table_names()) >= ORIGINAL_TABLES
            with engine.connect() as connection:
                found = connection.execute(
                    text("select count(*) from users where id = :id"), {"id": user_id}
                ).scalar_one()
            assert found == 1
        finally:
            engine.dispose()

    def test_database_starts_empty(self, original_db: OriginalDatabase) -> None:
        """No rows are left over from other tests."""
        with original_db.engine.connect() as connection:
            for table_name in ORIGINAL_TABLES:
                assert count(connection, table_name) == 0


class TestTables:
    """The original app's tables exist with the columns the migrations give them."""

    def test_tables_exist(self, original_db: OriginalDatabase) -> None:
        """All five tables exist, and HEAD's snapshot table does not."""
        tables = set(inspect(original_db.engine).get_table_names())
        assert tables >= ORIGINAL_TABLES
        assert "reseller_usage_snapshots" not in tables

    @pytest.mark.parametrize("table_name", sorted(EXPECTED_COLUMNS))
    def test_columns(self, original_db: OriginalDatabase, table_name: str) -> None:
        """Each table has exactly the c696ca1 columns."""
        assert columns(original_db, table_name) == EXPECTED_COLUMNS[table_name]

    def test_reseller_configs_status_index(self, original_db: OriginalDatabase) -> None:
        """reseller_configs has the (reseller_id, status) index."""
        indexes = inspect(original_db.engine).get_indexes("reseller_configs")
        assert any(i["column_names"] == ["reseller_id", "status"] for i in indexes)

    def test_unique_keys(self, original_db: OriginalDatabase) -> None:
        """settings.key and resellers.user_id are unique."""
        user_id = insert_user(original_db.engine)
        insert_reseller(original_db.engine, user_id=user_id)
        insert_setting(original_db.engine, "reseller.allow_config_overrun", "false")
        with pytest.raises(IntegrityError):
            insert_reseller(original_db.engine, user_id=user_id)
        with pytest.raises(IntegrityError):
            insert_setting(original_db.engine, "reseller.allow_config_overrun", "true")

    def test_settings_has_the_xui_link_type_column(self, original_db: OriginalDatabase) -> None:
        """The 2025_09_18 migration's settings.xui_link_type fills itself with 'single'."""
        setting_id = insert_setting(original_db.engine, "some.key", "1")
        assert fetch_row(original_db.engine, "settings", setting_id)["xui_link_type"] == "single"


class TestConstraints:
    """Enum constraints and foreign keys behave as in the original database."""

    @pytest.mark.parametrize(
        ("table_name", "status"),
        [("reseller_configs", "paused"), ("resellers", "suspended_wallet")],
    )
    def test_bad_status_is_rejected(
        self, original_db: OriginalDatabase, table_name: str, status: str
    ) -> None:
        """A status outside the enum fails (CHECK on sqlite/postgresql, strict ENUM on mariadb)."""
        reseller_id = insert_reseller(original_db.engine)
        config_id = insert_config(original_db.engine, reseller_id=reseller_id)
        row_id = config_id if table_name == "reseller_configs" else reseller_id
        rows = table(table_name, column("id"), column("status"))
        statement = update(rows).where(rows.c.id == row_id).values(status=status)
        with pytest.raises(DBAPIError), original_db.engine.begin() as connection:
            connection.execute(statement)

    def test_eylandoo_configs_are_accepted(self, original_db: OriginalDatabase) -> None:
        """reseller_configs.panel_type takes 'eylandoo' on every backend."""
        panel_id = insert_panel(original_db.engine, panel_type="eylandoo")
        reseller_id = insert_reseller(original_db.engine, panel_id=panel_id)
        config_id = insert_config(
            original_db.engine, reseller_id=reseller_id, panel_type="eylandoo", panel_id=panel_id
        )
        assert fetch_row(original_db.engine, "reseller_configs", config_id)["panel_type"] == (
            "eylandoo"
        )

    def test_unknown_panel_type_is_rejected(self, original_db: OriginalDatabase) -> None:
        """A config panel_type the enum does not list (v2ray) fails."""
        reseller_id = insert_reseller(original_db.engine)
        with pytest.raises(DBAPIError):
            insert_config(original_db.engine, reseller_id=reseller_id, panel_type="v2ray")

    def test_deleting_a_panel_unlinks_its_configs(self, original_db: OriginalDatabase) -> None:
        """reseller_configs.panel_id is set to NULL when its panel is deleted."""
        panel_id = insert_panel(original_db.engine)
        reseller_id = insert_reseller(original_db.engine, panel_id=panel_id)
        config_id = insert_config(original_db.engine, reseller_id=reseller_id, panel_id=panel_id)
        with original_db.engine.begin() as connection:
            connection.execute(text("delete from panels where id = :id"), {"id": panel_id})
        assert fetch_row(original_db.engine, "reseller_configs", config_id)["panel_id"] is None
        assert fetch_row(original_db.engine, "resellers", reseller_id)["panel_id"] is None

    def test_deleting_a_reseller_deletes_its_configs(self, original_db: OriginalDatabase) -> None:
        """Configs cascade away with their reseller, and resellers with their user."""
        user_id = insert_user(original_db.engine)
        other_user = insert_user(original_db.engine)
        reseller_id = insert_reseller(original_db.engine, user_id=user_id)
        insert_config(original_db.engine, reseller_id=reseller_id, created_by=other_user)
        with original_db.engine.begin() as connection:
            connection.execute(text("delete from users where id = :id"), {"id": user_id})
            assert count(connection, "reseller_configs") == 0
            assert count(connection, "resellers") == 0

    def test_config_needs_an_existing_reseller(self, original_db: OriginalDatabase) -> None:
        """A config pointing at a missing reseller is refused by the foreign key."""
        user_id = insert_user(original_db.engine)
        with pytest.raises(IntegrityError):
            insert_config(original_db.engine, reseller_id=999_999, created_by=user_id)


class TestRows:
    """The seed helpers write rows the way the PHP app does."""

    def test_soft_deleted_config(self, original_db: OriginalDatabase) -> None:
        """A soft-deleted config is stored with deleted_at and left out by `deleted_at is null`."""
        reseller_id = insert_reseller(original_db.engine)
        live = insert_config(original_db.engine, reseller_id=reseller_id)
        gone = insert_config(
            original_db.engine, reseller_id=reseller_id, deleted_at="2025-11-04 12:30:00"
        )
        with original_db.engine.connect() as connection:
            ids = connection.execute(
                text("select id from reseller_configs where deleted_at is null")
            ).scalars()
            assert list(ids) == [live]
        assert str(fetch_row(original_db.engine, "reseller_configs", gone)["deleted_at"]) == (
            "2025-11-04 12:30:00"
        )

    def test_meta_is_stored_as_php_wrote_it(self, original_db: OriginalDatabase) -> None:
        """Meta JSON comes back byte for byte as PHP's json_encode wrote it."""
        reseller_id = insert_reseller(original_db.engine)
        meta = {"settled_usage_bytes": 1234, "last_reset_at": "2025-11-04 10:00:00"}
        assert php_json_encode(meta) == META_TEXT
        from_dict = insert_config(original_db.engine, reseller_id=reseller_id, meta=meta)
        from_text = insert_config(original_db.engine, reseller_id=reseller_id, meta=META_TEXT)
        for config_id in (from_dict, from_text):
            assert json_text(original_db, "reseller_configs", "meta", config_id) == META_TEXT

    def test_config_defaults(self, original_db: OriginalDatabase) -> None:
        """Columns the app leaves unset take their defaults: usage 0, status active, no meta."""
        reseller_id = insert_reseller(original_db.engine)
        config = fetch_row(
            original_db.engine,
            "reseller_configs",
            insert_config(original_db.engine, reseller_id=reseller_id, panel_user_id=None),
        )
        assert config["usage_bytes"] == 0
        assert config["status"] == "active"
        assert config["meta"] is None
        assert config["panel_user_id"] is None
        assert config["deleted_at"] is None

    def test_reseller_fields(self, original_db: OriginalDatabase) -> None:
        """A reseller keeps its type, status, quota, window and a zero usage counter."""
        reseller = fetch_row(
            original_db.engine,
            "resellers",
            insert_reseller(
                original_db.engine,
                type="plan",
                status="suspended",
                traffic_total_bytes=2**40,
                window_starts_at="2025-11-01 00:00:00",
                window_ends_at="2025-12-01 00:00:00",
            ),
        )
        assert (reseller["type"], reseller["status"]) == ("plan", "suspended")
        assert reseller["traffic_total_bytes"] == 2**40
        assert reseller["traffic_used_bytes"] == 0
        assert str(reseller["window_ends_at"]) == "2025-12-01 00:00:00"

    def test_panel_fields(self, original_db: OriginalDatabase) -> None:
        """A panel keeps its type, url and extra JSON, with encrypted credentials."""
        extra = {"node_hostname": "https://node.example.test", "default_inbound_id": 3}
        panel_id = insert_panel(
            original_db.engine,
            panel_type="xui",
            url="https://xui.example.test:2053",
            username="root",
            password="pa55",
            extra=extra,
        )
        panel = fetch_row(original_db.engine, "panels", panel_id)
        assert (panel["panel_type"], panel["url"], panel["username"]) == (
            "xui",
            "https://xui.example.test:2053",
            "root",
        )
        assert panel["password"] != "pa55"
        assert panel["api_token"] is None
        assert bool(panel["is_active"]) is True
        stored = json_text(original_db, "panels", "extra", panel_id)
        assert stored == php_json_encode(extra)
        assert stored is not None
        assert json.loads(stored) == extra


class TestHeadVariant:
    """HEAD's additions are present only in the HEAD variant."""

    def test_admin_forgiven_bytes_absent_at_c696ca1(self, original_db: OriginalDatabase) -> None:
        """Without HEAD's additions resellers has no admin_forgiven_bytes column."""
        assert original_db.head is False
        assert "admin_forgiven_bytes" not in columns(original_db, "resellers")

    def test_admin_forgiven_bytes_present_at_head(self, original_db_head: OriginalDatabase) -> None:
        """With HEAD's additions resellers has admin_forgiven_bytes and the wallet columns."""
        assert original_db_head.head is True
        expected = EXPECTED_COLUMNS["resellers"] | HEAD_RESELLER_COLUMNS
        assert columns(original_db_head, "resellers") == expected

    def test_head_defaults(self, original_db_head: OriginalDatabase) -> None:
        """A reseller written without HEAD's columns gets forgiven 0 and billing 'traffic'."""
        reseller = fetch_row(
            original_db_head.engine, "resellers", insert_reseller(original_db_head.engine)
        )
        assert reseller["admin_forgiven_bytes"] == 0
        assert reseller["billing_type"] == "traffic"
        assert reseller["wallet_balance"] == 0
        assert reseller["wallet_price_per_gb"] is None

    def test_snapshot_table_exists(self, original_db_head: OriginalDatabase) -> None:
        """reseller_usage_snapshots exists with its columns and fills measured_at itself."""
        assert {"id", "reseller_id", "total_bytes", "measured_at"} == columns(
            original_db_head, "reseller_usage_snapshots"
        )
        reseller_id = insert_reseller(original_db_head.engine)
        with original_db_head.engine.begin() as connection:
            connection.execute(
                text(
                    "insert into reseller_usage_snapshots (reseller_id, total_bytes) values (:r, 5)"
                ),
                {"r": reseller_id},
            )
            measured = connection.execute(
                text("select measured_at from reseller_usage_snapshots")
            ).scalar_one()
        assert measured is not None

    def test_wallet_values_are_accepted(self, original_db_head: OriginalDatabase) -> None:
        """Type 'wallet' and status 'suspended_wallet' are allowed at HEAD."""
        reseller_id = insert_reseller(
            original_db_head.engine,
            type="wallet",
            status="suspended_wallet",
            admin_forgiven_bytes=42,
            wallet_balance=-1500,
        )
        reseller = fetch_row(original_db_head.engine, "resellers", reseller_id)
        assert (reseller["type"], reseller["status"]) == ("wallet", "suspended_wallet")
        assert (reseller["admin_forgiven_bytes"], reseller["wallet_balance"]) == (42, -1500)

    def test_bad_status_still_rejected_at_head(self, original_db_head: OriginalDatabase) -> None:
        """The widened reseller status enum still refuses unknown values."""
        with pytest.raises(DBAPIError):
            insert_reseller(original_db_head.engine, status="frozen")


class TestUpgrade:
    """`apply_head_additions` migrates a c696ca1 database that already holds rows."""

    def test_upgrade_keeps_rows(self, original_db: OriginalDatabase) -> None:
        """Resellers and their configs survive the upgrade, with HEAD's columns defaulted."""
        reseller_id = insert_reseller(original_db.engine, traffic_used_bytes=77)
        config_id = insert_config(original_db.engine, reseller_id=reseller_id, meta=META_TEXT)
        apply_head_additions(original_db.engine, original_db.dialect)
        reseller = fetch_row(original_db.engine, "resellers", reseller_id)
        assert (reseller["traffic_used_bytes"], reseller["admin_forgiven_bytes"]) == (77, 0)
        assert json_text(original_db, "reseller_configs", "meta", config_id) == META_TEXT

    def test_upgrade_keeps_foreign_keys_on(self, original_db: OriginalDatabase) -> None:
        """After the upgrade, deleting a reseller still cascades to its configs."""
        reseller_id = insert_reseller(original_db.engine)
        insert_config(original_db.engine, reseller_id=reseller_id)
        apply_head_additions(original_db.engine, original_db.dialect)
        with original_db.engine.begin() as connection:
            connection.execute(text("delete from resellers where id = :id"), {"id": reseller_id})
            assert count(connection, "reseller_configs") == 0


class TestSchemaModule:
    """The schema module reads its files and checks its arguments."""

    @pytest.mark.parametrize("dialect", ["sqlite", "mysql", "mariadb", "postgresql"])
    def test_head_adds_statements(self, dialect: str) -> None:
        """Every dialect has c696ca1 statements, and HEAD adds more after them."""
        base = statements(dialect)
        head = statements(dialect, head=True)
        assert base
        assert head[: len(base)] == base
        assert len(head) > len(base)
        assert not any(s.endswith(";") or s.startswith("--") for s in head)

    def test_unknown_dialect_is_refused(self) -> None:
        """An unknown dialect name raises ValueError."""
        with pytest.raises(ValueError, match="unknown dialect"):
            statements("oracle")

    def test_mismatched_dialect_is_refused(self, tmp_path: Path) -> None:
        """Applying one dialect's DDL through another dialect's engine raises ValueError."""
        engine = create_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
        try:
            with pytest.raises(ValueError, match="does not match"):
                apply_original_schema(engine, "postgresql")
        finally:
            engine.dispose()
