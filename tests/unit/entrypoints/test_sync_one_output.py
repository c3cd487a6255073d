"""The text `sync-one` prints."""

from tests.unit.core.test_sync_one import GIB_READING, config, world
from usage_entrypoints.sync_one_output import fmt_bytes, header_lines, result_lines

SEED_OUTPUT = """\
=== Syncing Usage for Config #123 ===

📋 Config Information:
  ID: 123
  Reseller ID: 45
  Status: active
  Panel Type: eylandoo
  Panel ID: 10
  Panel User ID: test_user_123
  External Username: test_user_123
  Current Usage: 524288000 bytes (500.00 MB)
  Traffic Limit: 10737418240 bytes (10240.00 MB)

🔧 Panel Information:
  Panel Name: Eylandoo Production
  Panel Type: eylandoo
  URL: https://panel.example.com

📡 Fetching usage from panel...

✅ Successfully fetched usage from panel
📊 Usage: 1073741824 bytes (1024.00 MB)

💾 Updated config usage_bytes in database
  Previous: 524288000 bytes (500.00 MB)
  Current:  1073741824 bytes (1024.00 MB)
  Delta:    549453824 bytes (524.00 MB)

✅ Sync completed successfully"""


class TestSyncOneOutput:
    """The text of `sync-one` is the seed's, line for line."""

    def test_seed_example_exactly(self) -> None:
        """The seed's example config and panel reply print the seed's lines."""
        w = world([config()], {10: {"test_user_123": GIB_READING}})
        located = w.use_case.locate(123)
        report = w.use_case.sync(located)
        assert "\n".join(header_lines(located) + result_lines(report)) == SEED_OUTPUT

    def test_bytes_format(self) -> None:
        """Two decimals, no thousands separator, negatives keep their sign."""
        assert fmt_bytes(10_737_418_240) == "10737418240 bytes (10240.00 MB)"
        assert fmt_bytes(-1_048_576) == "-1048576 bytes (-1.00 MB)"
