"""Hypothesis profiles, chosen by HYPOTHESIS_PROFILE: ``dev`` (default, fast) and ``ci``.

The same two profiles as the core's test suite. When both suites run in one
session the core's registration wins; on their own, these tests register them.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

PROFILES = {
    "dev": settings(
        max_examples=30,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    ),
    "ci": settings(
        max_examples=200,
        stateful_step_count=60,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    ),
}

for name, profile in PROFILES.items():
    try:
        settings.get_profile(name)
    except InvalidArgument:
        settings.register_profile(name, profile)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
