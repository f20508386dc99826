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

import graphlib

import numpy as np
import pandas as pd

from p2pmarket.core.network import MANAGER_PREFIX
from p2pmarket.core.results import ClearingResult

__all__ = ["BILATERAL_COLUMNS", "bilateral_trades", "route_through"]

BILATERAL_COLUMNS = ("period", "seller", "buyer", "energy_kwh", "fee", "via_manager")
"""`fee` is the currency paid in fees on the way from seller to buyer (all links)."""


def bilateral_trades(result: ClearingResult) -> pd.DataFrame:
    """Trades between peers, manager nodes resolved; one row per period, seller and buyer."""
    return route_through(result.trades, MANAGER_PREFIX)


def route_through(trades: pd.DataFrame, prefix: str, in_order: bool = False) -> pd.DataFrame:
    """Resolve pass-through nodes (names starting with `prefix`) in a table of link flows
    (`period, seller, buyer, energy_kwh, fee`) into trades between the other nodes.

    By default by proportional sharing (unique; its output grows with sellers x buyers of a
    node). With `in_order=True`, for large acyclic networks of hubs, each node hands on what
    it received in order, seller by seller, filling its outflows in order (the north-west
    corner rule): at most inflows + outflows pieces per node, so the output grows with the
    links. Both keep every seller's energy and every fee, and both are optimal decompositions.
    """
    if in_order:
        return _in_order(trades, prefix)
    is_manager_seller = trades["seller"].str.startswith(prefix)
    is_manager_buyer = trades["buyer"].str.startswith(prefix)
    direct = trades[~is_manager_seller & ~is_manager_buyer]
    parts = [
        pd.DataFrame(
            {
                "period": direct["period"].to_numpy(),
                "seller": direct["seller"].to_numpy(),
                "buyer": direct["buyer"].to_numpy(),
                "energy_kwh": direct["energy_kwh"].to_numpy(),
                "fee": direct["fee"].to_numpy(),
                "via_manager": False,
            }
        )
    ]
    routed = trades[is_manager_seller | is_manager_buyer]
    for period, flows in routed.groupby("period", sort=True):
        parts.append(_through_managers(int(str(period)), flows, prefix))
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


def _in_order(trades: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """North-west corner decomposition through an acyclic network of pass-through nodes."""
    through_seller = trades["seller"].str.startswith(prefix).to_numpy()
    through_buyer = trades["buyer"].str.startswith(prefix).to_numpy()
    direct = trades[~through_seller & ~through_buyer]
    pieces = [
        pd.DataFrame(
            {
                "period": direct["period"].to_numpy(),
                "seller": direct["seller"].to_numpy(),
                "buyer": direct["buyer"].to_numpy(),
                "energy_kwh": direct["energy_kwh"].to_numpy(),
                "fee": direct["fee"].to_numpy(),
            }
        )
    ]
    routed = trades[through_seller | through_buyer]
    hub_links = routed[
        routed["seller"].str.startswith(prefix) & routed["buyer"].str.startswith(prefix)
    ]
    order = graphlib.TopologicalSorter(
        {hub: set(group["seller"]) for hub, group in hub_links.groupby("buyer")}
    )
    hubs = [h for h in order.static_order()]
    hubs += sorted(set(routed["buyer"][routed["buyer"].str.startswith(prefix)]) - set(hubs))
    for period, flows in routed.groupby("period", sort=True):
        parcels: dict[str, pd.DataFrame] = {
            str(hub): group[["seller", "energy_kwh", "fee"]].rename(columns={"seller": "origin"})
            for hub, group in flows[~flows["seller"].str.startswith(prefix)].groupby("buyer")
        }
        outflows = {str(hub): group for hub, group in flows.groupby("seller")}
        for hub in hubs:
            if hub not in outflows or hub not in parcels:
                continue
            matched = _north_west(parcels.pop(hub), outflows[hub])
            onward = matched["buyer"].str.startswith(prefix)
            for target, group in matched[onward].groupby("buyer"):
                more = group[["origin", "energy_kwh", "fee"]]
                key = str(target)
                parcels[key] = pd.concat([parcels[key], more]) if key in parcels else more
            done = matched[~onward]
            pieces.append(
                pd.DataFrame(
                    {
                        "period": int(str(period)),
                        "seller": done["origin"].to_numpy(),
                        "buyer": done["buyer"].to_numpy(),
                        "energy_kwh": done["energy_kwh"].to_numpy(),
                        "fee": done["fee"].to_numpy(),
                    }
                )
            )
    out = pd.concat(pieces, ignore_index=True)
    out = out[out["energy_kwh"] > 0]
    return out.groupby(["period", "seller", "buyer"], as_index=False)[["energy_kwh", "fee"]].sum()


def _north_west(parcels: pd.DataFrame, outflows: pd.DataFrame) -> pd.DataFrame:
    """Match a node's incoming parcels (origin, energy, fee so far) to its outflows in order."""
    supply = parcels["energy_kwh"].to_numpy()
    demand = outflows["energy_kwh"].to_numpy()
    cut_in, cut_out = np.cumsum(supply), np.cumsum(demand)
    total = min(cut_in[-1], cut_out[-1])
    cuts = np.unique(np.concatenate([[0.0], cut_in, cut_out]))
    cuts = cuts[cuts <= total + 1e-12]
    lo, hi = cuts[:-1], cuts[1:]
    middle = (lo + hi) / 2
    i = np.minimum(np.searchsorted(cut_in, middle), supply.size - 1)
    j = np.minimum(np.searchsorted(cut_out, middle), demand.size - 1)
    energy = hi - lo
    fee_in = parcels["fee"].to_numpy() / np.where(supply > 0, supply, 1.0)
    fee_out = outflows["fee"].to_numpy() / np.where(demand > 0, demand, 1.0)
    return pd.DataFrame(
        {
            "origin": parcels["origin"].to_numpy()[i],
            "buyer": outflows["buyer"].to_numpy()[j],
            "energy_kwh": energy,
            "fee": energy * (fee_in[i] + fee_out[j]),
        }
    )


def _through_managers(period: int, flows: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Proportional sharing of the flows through the pass-through nodes in one period."""
    managers = pd.Index(
        sorted(
            set(flows.loc[flows["seller"].str.startswith(prefix), "seller"])
            | set(flows.loc[flows["buyer"].str.startswith(prefix), "buyer"])
        )
    )
    into = flows[flows["buyer"].str.startswith(prefix)]
    out_of = flows[flows["seller"].str.startswith(prefix)]
    from_peer = into[~into["seller"].str.startswith(prefix)]
    between = into[into["seller"].str.startswith(prefix)]
    to_peer = out_of[~out_of["buyer"].str.startswith(prefix)]

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
