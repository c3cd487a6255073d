"""`SqlPanelRepository` over databases created with the original app's DDL."""

import pytest
from original_rows import PANEL_PASSWORD, TEST_APP_KEY, insert_panel

from usage_adapters.credentials import credential_reader
from usage_adapters.sql.panels import SqlPanelRepository
from usage_core.errors import CredentialsError


class TestPanels:
    """`SqlPanelRepository` resolves panels and decrypts their credentials."""

    def test_decrypts_with_the_app_key(self, original_db) -> None:
        """Credentials stored by the app decrypt with its APP_KEY."""
        panel_id = insert_panel(
            original_db.engine,
            panel_type="eylandoo",
            api_token="tok-1",
            extra={"verify_tls": False},
        )
        repo = SqlPanelRepository(original_db.engine, credential_reader(TEST_APP_KEY))
        panel = repo.get(panel_id)
        assert panel is not None
        assert panel.password is not None
        assert panel.password.reveal() == PANEL_PASSWORD
        assert panel.api_token is not None
        assert panel.api_token.reveal() == "tok-1"
        assert panel.verify_tls is False

    def test_wrong_key_names_the_panel(self, original_db) -> None:
        """A credential that does not decrypt is an error naming the panel, not the value."""
        panel_id = insert_panel(original_db.engine, app_key=TEST_APP_KEY)
        other_key = "base64:" + "A" * 43 + "="
        repo = SqlPanelRepository(original_db.engine, credential_reader(other_key))
        with pytest.raises(CredentialsError, match=f"panel {panel_id}: password"):
            repo.get(panel_id)

    def test_first_of_type_is_lowest_id(self, original_db) -> None:
        """Without panel_id, the lowest-id panel of the type is chosen."""
        first = insert_panel(original_db.engine, panel_type="marzneshin", app_key=None)
        insert_panel(original_db.engine, panel_type="marzneshin", app_key=None)
        repo = SqlPanelRepository(original_db.engine)
        panel = repo.first_of_type("marzneshin")
        assert panel is not None
        assert panel.id == first
        assert repo.first_of_type("xui") is None

    def test_first_of_type_reads_the_type_named_in_extra(self, original_db) -> None:
        """A row stored as `other` naming `pasarguard` in extra is the first PasarGuard panel."""
        insert_panel(original_db.engine, panel_type="other", app_key=None)
        named = insert_panel(
            original_db.engine,
            panel_type="other",
            extra={"usage_sync_panel_type": "pasarguard"},
            app_key=None,
        )
        repo = SqlPanelRepository(original_db.engine)
        panel = repo.first_of_type("pasarguard")
        assert panel is not None
        assert (panel.id, panel.type_name, panel.panel_type) == (named, "pasarguard", "other")
        other = repo.first_of_type("other")
        assert other is not None
        assert other.id != named
