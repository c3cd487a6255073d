"""`SqlResellerRepository` over databases created with the original app's DDL."""

from original_rows import fetch_row, insert_config, insert_reseller

from usage_adapters.sql.configs import SqlConfigRepository
from usage_adapters.sql.meta import SETTLED_KEY
from usage_adapters.sql.resellers import SqlResellerRepository


class TestResellers:
    """`SqlResellerRepository` selects resellers and stores totals."""

    def test_active_traffic_resellers(self, original_db) -> None:
        """Only active traffic resellers are selected."""
        keep = insert_reseller(original_db.engine, type="traffic", status="active")
        insert_reseller(original_db.engine, type="traffic", status="suspended")
        insert_reseller(original_db.engine, type="plan", status="active")
        assert [r.id for r in SqlResellerRepository(original_db.engine).synced()] == [keep]

    def test_ledgers_and_forgiven_without_the_column(self, original_db) -> None:
        """At c696ca1 there is no admin_forgiven_bytes: forgiveness is 0."""
        reseller = insert_reseller(original_db.engine)
        insert_config(
            original_db.engine,
            reseller_id=reseller,
            external_username="a",
            usage_bytes=10,
            meta={SETTLED_KEY: 5},
        )
        insert_config(
            original_db.engine,
            reseller_id=reseller,
            external_username="b",
            status="disabled",
            usage_bytes=7,
        )
        insert_config(
            original_db.engine,
            reseller_id=reseller,
            external_username="c",
            usage_bytes=1000,
            deleted_at="2025-11-05 00:00:00",
        )
        repo = SqlResellerRepository(original_db.engine)
        ledgers = SqlConfigRepository(original_db.engine).ledgers_of(reseller)
        assert sum(s.total_bytes for s in ledgers) == 22
        usage = repo.usage_of(reseller)
        assert usage is not None
        assert usage.forgiven_bytes == 0
        repo.set_used_bytes({reseller: 22})
        usage = repo.usage_of(reseller)
        assert usage is not None
        assert usage.used_bytes == 22

    def test_forgiven_with_head_schema(self, original_db_head) -> None:
        """With HEAD's column, admin_forgiven_bytes is read."""
        reseller = insert_reseller(original_db_head.engine, admin_forgiven_bytes=300)
        usage = SqlResellerRepository(original_db_head.engine).usage_of(reseller)
        assert usage is not None
        assert usage.forgiven_bytes == 300

    def test_totals_in_one_statement(self, original_db) -> None:
        """`set_used_bytes` stores several resellers' totals."""
        a, b = insert_reseller(original_db.engine), insert_reseller(original_db.engine)
        SqlResellerRepository(original_db.engine).set_used_bytes({a: 11, b: 22})
        assert fetch_row(original_db.engine, "resellers", a)["traffic_used_bytes"] == 11
        assert fetch_row(original_db.engine, "resellers", b)["traffic_used_bytes"] == 22
