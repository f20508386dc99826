"""Test configuration: a derandomised hypothesis profile for CI (set by `.ci/run`)."""

from __future__ import annotations

import os

from hypothesis import Phase, settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
# A first look while working: few examples, no shrinking (a failure is reported as found).
settings.register_profile(
    "quick", max_examples=5, print_blob=True, phases=[Phase.explicit, Phase.generate]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
