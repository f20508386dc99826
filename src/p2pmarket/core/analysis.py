"""Pure functions of a clearing result: storage behaviour and role changes over the horizon."""

from __future__ import annotations

import numpy as np
import pandas as pd

from p2pmarket.core.results import ClearingResult

__all__ = ["STORAGE_COLUMNS", "charging_cycles", "role_changes", "storage_summary"]

ACTIVE_KW = 1e-6
"""Charge or discharge below this power (kW) counts as idle."""

STORAGE_COLUMNS = (
    "peer",
    "capacity_kwh",
    "power_kw",
    "charged_kwh",
    "discharged_kwh",
    "losses_kwh",
    "initial_soc_kwh",
    "final_soc_kwh",
    "charging_cycles",
    "equivalent_full_cycles",
    "simultaneous_periods",
)


def charging_cycles(charge_kw: np.ndarray) -> int:
    """Number of charging cycles: maximal runs of consecutive periods with charge > 0."""
    active = np.asarray(charge_kw) > ACTIVE_KW
    return int(np.count_nonzero(active & ~np.concatenate([[False], active[:-1]])))


def storage_summary(result: ClearingResult) -> pd.DataFrame:
    """One row per storage unit: energy in and out, losses, cycles.

    - `losses_kwh`: energy lost to efficiency, charged*(1 - eta_ch) + discharged*(1/eta_dis - 1)
      (what entered the terminals minus what reached the cells, plus what the cells gave up
      beyond what left the terminals).
    - `charging_cycles`: runs of consecutive charging periods (the paper's count).
    - `equivalent_full_cycles`: discharged energy over capacity.
    - `simultaneous_periods`: periods in which the unit charges and discharges at once. With
      efficiencies below 1 this wastes energy; the LP does it only where the waste costs
      nothing (another optimum without it then exists), and it is reported here, not hidden.
    """
    dt = result.scenario.period_hours
    rows = []
    dispatch = result.dispatch
    for peer in result.scenario.peers:
        unit = peer.storage
        if unit is None:
            continue
        d = dispatch[dispatch["peer"] == peer.id].sort_values("period")
        charge = d["charge_kw"].to_numpy()
        discharge = d["discharge_kw"].to_numpy()
        charged = float(charge.sum() * dt)
        discharged = float(discharge.sum() * dt)
        rows.append(
            {
                "peer": peer.id,
                "capacity_kwh": unit.capacity_kwh,
                "power_kw": unit.power_kw,
                "charged_kwh": charged,
                "discharged_kwh": discharged,
                "losses_kwh": charged * (1 - unit.charge_efficiency)
                + discharged * (1 / unit.discharge_efficiency - 1),
                "initial_soc_kwh": unit.initial_soc * unit.capacity_kwh,
                "final_soc_kwh": float(d["soc_kwh"].iloc[-1]),
                "charging_cycles": charging_cycles(charge),
                "equivalent_full_cycles": discharged / unit.capacity_kwh,
                "simultaneous_periods": int(
                    np.count_nonzero((charge > ACTIVE_KW) & (discharge > ACTIVE_KW))
                ),
            }
        )
    return pd.DataFrame(rows, columns=list(STORAGE_COLUMNS))


def role_changes(result: ClearingResult) -> pd.DataFrame:
    """Peers whose derived role changes over the horizon, one row each.

    Columns: `peer`, `declared_role`, `changes` (number of periods whose role differs from the
    period before), `roles` (the roles taken, in order of first appearance) and `first_change`
    (the first period with a new role).
    """
    rows = []
    for peer, d in result.dispatch.sort_values("period").groupby("peer", sort=False):
        roles = d["role"].to_numpy()
        changed = np.flatnonzero(roles[1:] != roles[:-1]) + 1
        if changed.size == 0:
            continue
        rows.append(
            {
                "peer": peer,
                "declared_role": d["declared_role"].iloc[0],
                "changes": int(changed.size),
                "roles": " -> ".join(dict.fromkeys(roles)),
                "first_change": int(d["period"].to_numpy()[changed[0]]),
            }
        )
    return pd.DataFrame(rows, columns=["peer", "declared_role", "changes", "roles", "first_change"])
