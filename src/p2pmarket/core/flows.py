"""Bilateral trades: who sold to whom, also when energy passed through community managers.

A direct p2p trade is already bilateral. Energy that enters a manager node is mixed there, so
each kWh leaving a manager is attributed to the sellers upstream in proportion to what they
put in (proportional sharing). With manager -> manager trades the shares of all managers of a
period follow from one small linear system,

    (I - A) E = B,   A[k, j] = x[j -> k] / inflow[j],   B[k, o] = x[o -> k] (o a peer),

where E[k, o] is the energy of seller o passing through manager k. The fees paid along the way
are attributed the same way: (I - A) G = B_fee + W E with W[k, j] = x[j -> k] fee[j -> k] /
inflow[j]. Any decomposition of an optimal flow is optimal; this one is unique, needs no
search, and keeps every seller's energy and every fee paid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from p2pmarket.core.results import ClearingResult
from p2pmarket.types import NodeKind

__all__ = ["BILATERAL_COLUMNS", "bilateral_trades"]

BILATERAL_COLUMNS = ("period", "seller", "buyer", "energy_kwh", "fee", "via_manager")
"""`fee` is the currency paid in fees on the way from seller to buyer (all links)."""


def bilateral_trades(result: ClearingResult) -> pd.DataFrame:
    """Trades between peers, manager nodes resolved; one row per period, seller and buyer.

    Pass-through nodes are those whose `seller_kind` / `buyer_kind` is not `peer`; names are
    never looked at for that (a peer may be called `manager:C1`)."""
    trades = result.trades
    via_seller = (trades["seller_kind"] != NodeKind.PEER).to_numpy()
    via_buyer = (trades["buyer_kind"] != NodeKind.PEER).to_numpy()
    direct = trades[~via_seller & ~via_buyer]
    parts = [
        direct[["period", "seller", "buyer", "energy_kwh", "fee"]]
        .reset_index(drop=True)
        .assign(via_manager=False)
    ]
    routed = trades[via_seller | via_buyer]
    for period, flows in routed.groupby("period", sort=True):
        parts.append(_through_managers(int(str(period)), flows))
    out = pd.concat(parts, ignore_index=True)
    out = out[out["energy_kwh"] > 0]
    return (
        out.groupby(["period", "seller", "buyer", "via_manager"], as_index=False)[
            ["energy_kwh", "fee"]
        ]
        .sum()
        .loc[:, list(BILATERAL_COLUMNS)]
        .sort_values(["period", "seller", "buyer"], ignore_index=True)
    )


def _through_managers(period: int, flows: pd.DataFrame) -> pd.DataFrame:
    """Proportional sharing of the flows through the pass-through nodes in one period.
    Managers are keyed by name among managers, sellers by name among peers: the two sets of
    names may overlap."""
    via_seller = flows["seller_kind"] != NodeKind.PEER
    via_buyer = flows["buyer_kind"] != NodeKind.PEER
    managers = pd.Index(
        sorted(set(flows.loc[via_seller, "seller"]) | set(flows.loc[via_buyer, "buyer"]))
    )
    into = flows[via_buyer]
    out_of = flows[via_seller]
    from_peer = into[~via_seller[via_buyer]]
    between = into[via_seller[via_buyer]]
    to_peer = out_of[~via_buyer[via_seller]]

    origins = pd.Index(sorted(set(from_peer["seller"])))
    k, o = len(managers), len(origins)
    inflow = np.zeros(k)
    np.add.at(inflow, managers.get_indexer(pd.Index(into["buyer"])), into["energy_kwh"].to_numpy())
    safe_inflow = np.where(inflow > 0, inflow, 1.0)

    rows = managers.get_indexer(pd.Index(from_peer["buyer"]))
    cols = origins.get_indexer(pd.Index(from_peer["seller"]))
    b_energy = np.zeros((k, o))
    b_fee = np.zeros((k, o))
    np.add.at(b_energy, (rows, cols), from_peer["energy_kwh"].to_numpy())
    np.add.at(b_fee, (rows, cols), from_peer["fee"].to_numpy())

    to_k = managers.get_indexer(pd.Index(between["buyer"]))
    from_j = managers.get_indexer(pd.Index(between["seller"]))
    share = np.zeros((k, k))
    fee_rate = np.zeros((k, k))
    np.add.at(share, (to_k, from_j), between["energy_kwh"].to_numpy() / safe_inflow[from_j])
    np.add.at(fee_rate, (to_k, from_j), between["fee"].to_numpy() / safe_inflow[from_j])
    system = np.eye(k) - share
    energy = np.linalg.lstsq(system, b_energy, rcond=None)[0]
    fees = np.linalg.lstsq(system, b_fee + fee_rate @ energy, rcond=None)[0]

    hub = managers.get_indexer(pd.Index(to_peer["seller"]))
    part = to_peer["energy_kwh"].to_numpy()[:, None] / safe_inflow[hub][:, None]
    delivered = part * energy[hub]  # (deliveries, origins)
    delivered_fee = (
        part * fees[hub] + (to_peer["fee"].to_numpy() / safe_inflow[hub])[:, None] * energy[hub]
    )
    n_out = len(to_peer)
    return pd.DataFrame(
        {
            "period": period,
            "seller": np.tile(np.asarray(origins), n_out),
            "buyer": np.repeat(to_peer["buyer"].to_numpy(), o),
            "energy_kwh": delivered.ravel(),
            "fee": delivered_fee.ravel(),
            "via_manager": True,
        }
    )
