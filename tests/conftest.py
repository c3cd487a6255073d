"""Settings shared by every test: the hypothesis profiles.

`ci` is loaded when the environment has CI=true; `dev` otherwise. Either can be
chosen explicitly with `pytest --hypothesis-profile=NAME`.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Machines running CI are slower and busier than a laptop: no deadline, no too_slow.
settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Local runs: fewer examples than hypothesis's 100, for a quick edit-test loop.
settings.register_profile("dev", max_examples=50)

settings.load_profile("ci" if os.environ.get("CI", "").strip().lower() == "true" else "dev")
