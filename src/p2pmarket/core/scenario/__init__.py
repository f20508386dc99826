"""The scenario: validated, immutable description of one market (SPEC C1, section 5).

`schema` holds the pydantic models, `rules` the cross-field checks every `Scenario` passes,
`messages` the translation of validation errors into one-line `ScenarioError`s, `series` the
scalar-or-per-period values.
"""

from p2pmarket.core.scenario.schema import (
    DESIGNS,
    OBJECTIVES,
    Community,
    CommunityFee,
    FlexibleBlock,
    Generation,
    Peer,
    Scenario,
    Storage,
)
from p2pmarket.core.scenario.series import FloatArray, Series, series, stacked

__all__ = [
    "DESIGNS",
    "OBJECTIVES",
    "Community",
    "CommunityFee",
    "FlexibleBlock",
    "FloatArray",
    "Generation",
    "Peer",
    "Scenario",
    "Series",
    "Storage",
    "series",
    "stacked",
]
