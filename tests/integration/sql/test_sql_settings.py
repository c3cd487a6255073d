"""`SqlSettingsRepository` over databases created with the original app's DDL."""

from datetime import datetime

from original_rows import insert_setting
from sqlalchemy import text

from usage_adapters.sql.settings import SqlSettingsRepository
from usage_core.interval import INTERVAL_SETTING_KEY


def now() -> datetime:
    """A fixed wall-clock time for the settings' timestamps."""
    return datetime(2026, 11, 24, 13, 30)


class TestSettings:
    """`SqlSettingsRepository` reads and upserts `settings(key, value)`."""

    def test_get_and_upsert(self, original_db) -> None:
        """A missing key is None; set inserts, then replaces, the row."""
        repo = SqlSettingsRepository(original_db.engine, now)
        assert repo.get(INTERVAL_SETTING_KEY) is None
        repo.set(INTERVAL_SETTING_KEY, "3")
        repo.set(INTERVAL_SETTING_KEY, "4")
        assert repo.get(INTERVAL_SETTING_KEY) == "4"
        with original_db.engine.connect() as conn:
            count = conn.execute(text("SELECT COUNT(*) FROM settings")).scalar_one()
        assert count == 1

    def test_reads_rows_the_app_wrote(self, original_db) -> None:
        """A value the app stored is returned as stored, spaces and all."""
        insert_setting(original_db.engine, INTERVAL_SETTING_KEY, " 2 ")
        assert SqlSettingsRepository(original_db.engine, now).get(INTERVAL_SETTING_KEY) == " 2 "
