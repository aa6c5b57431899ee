"""The Hypothesis profiles every suite uses, chosen by ``HYPOTHESIS_PROFILE``."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

#: ``dev`` (the default) is fast; ``ci`` runs many more examples and longer programs.
PROFILES = {
    "dev": settings(
        max_examples=30,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    ),
    "ci": settings(
        max_examples=300,
        stateful_step_count=60,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    ),
}


def load_profile_from_env(default: str = "dev") -> str:
    """Register the profiles (once per process) and load ``$HYPOTHESIS_PROFILE``.

    Call it from a ``conftest.py``; returns the profile name it loaded.
    """
    for name, profile in PROFILES.items():
        try:
            settings.get_profile(name)
        except InvalidArgument:
            settings.register_profile(name, profile)
    name = os.environ.get("HYPOTHESIS_PROFILE", default)
    settings.load_profile(name)
    return name
