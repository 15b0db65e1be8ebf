"""Hypothesis settings for the unit tests of `netpool`.

A moderate number of examples by default, so the suite stays fast on a small
machine; set HYPOTHESIS_PROFILE=thorough for a longer search (a few minutes).
The project root is importable through `pythonpath` in pyproject.toml.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("unit", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "unit"))
