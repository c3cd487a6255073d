"""A full sync against a Marzban as costly as the real one: the panel does only the work needed."""

from pathlib import Path

from original_rows import TEST_APP_KEY, fetch_row, insert_config, insert_panel, insert_reseller

from usage_entrypoints.container import build_container
from usage_sandbox.emulator import EmulatedUser, PanelEmulator

MIB = 1024**2
ADMIN, PASSWORD = "admin", "pw-SECRET-1"
PANEL_USERS, CONFIGS = 5_000, 20


def run_sync(db, tmp_path: Path) -> dict:
    """One full sync through the real container; its summary."""
    container = build_container(
        {
            "USAGE_SYNC_DATABASE_URL": db.url,
            "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
            "USAGE_SYNC_STATE_DIR": str(tmp_path / "state"),
            "USAGE_SYNC_LOG_FILE": str(tmp_path / "sync.log"),
        }
    )
    try:
        return container.sync_all()().as_dict()
    finally:
        container.shutdown_resources()


def test_twenty_configs_on_a_five_thousand_user_marzban(original_db, tmp_path: Path) -> None:
    """20 configs of 5,000 users: one batch of 20 users, well under a second of panel time."""
    db = original_db
    seed = [EmulatedUser(f"user{i:05d}", download=(i % 89 + 1) * MIB) for i in range(PANEL_USERS)]
    with PanelEmulator(
        "marzban", users=seed, username=ADMIN, password=PASSWORD, realistic=True
    ) as panel:
        panel_id = insert_panel(
            db.engine, panel_type="marzban", url=panel.url, username=ADMIN, password=PASSWORD
        )
        reseller = insert_reseller(db.engine)
        configs = {
            f"user{i:05d}": insert_config(
                db.engine,
                reseller_id=reseller,
                external_username=f"user{i:05d}",
                panel_type="marzban",
                panel_id=panel_id,
            )
            for i in range(0, PANEL_USERS, PANEL_USERS // CONFIGS)
        }
        summary = run_sync(db, tmp_path)

        assert summary["updated"] == CONFIGS
        for name, config_id in configs.items():
            user = panel.users.get(name)
            assert user is not None
            assert fetch_row(db.engine, "reseller_configs", config_id)["usage_bytes"] == user.used
        counts = panel.counts
        assert (counts.logins, counts.list_pages, counts.user_gets) == (1, 1, 0)
        assert counts.users_serialized == CONFIGS
        assert panel.stats().panel_s < 0.5
