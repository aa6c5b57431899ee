"""The Hypothesis profiles every suite uses, chosen by ``HYPOTHESIS_PROFILE``."""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, Phase, settings

#: ``dev`` (the default) is fast; ``ci`` runs many more examples and longer programs, sized
#: so that the whole suite (a dozen state machines that check every decision and push
#: after every step) stays well inside CI's time budget; ``nightly`` runs the most.
#: ``mutation`` judges mutants (``nox -s mutate``): the same examples for every mutant,
#: no shrinking and a per-example deadline, so no verdict waits on a long shrink.
PROFILES = {
    "dev": settings(
        max_examples=30,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    ),
    "ci": settings(
        max_examples=200,
        stateful_step_count=50,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    ),
    "nightly": settings(
        max_examples=1000,
        stateful_step_count=60,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    ),
    "mutation": settings(
        max_examples=30,
        stateful_step_count=40,
        deadline=timedelta(seconds=1),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow],
    ),
}


def load_profile_from_env(default: str = "dev") -> str:
    """Register the profiles and load ``$HYPOTHESIS_PROFILE``.

    Call it from a ``conftest.py``; returns the profile name it loaded. The
    registration always replaces a profile of the same name: Hypothesis ships a
    built-in ``ci`` profile (100 examples, derandomized) that ours supersedes.
    """
    for name, profile in PROFILES.items():
        settings.register_profile(name, profile)
    name = os.environ.get("HYPOTHESIS_PROFILE", default)
    settings.load_profile(name)
    return name
