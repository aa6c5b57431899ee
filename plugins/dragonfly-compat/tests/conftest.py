"""Hypothesis profiles, chosen by HYPOTHESIS_PROFILE: ``dev`` (default, fast) and ``ci``."""

from scheduler.testing import load_profile_from_env

load_profile_from_env()
