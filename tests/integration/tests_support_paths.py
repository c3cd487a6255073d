"""Where the installed console script lives."""

import sys
from pathlib import Path


def usage_sync_script() -> Path:
    """The `usage-sync` console script of the running interpreter's environment."""
    return Path(sys.executable).with_name("usage-sync")
