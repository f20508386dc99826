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
    if len(routed):
        parts.append(_through_managers(routed))
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


def _through_managers(flows: pd.DataFrame) -> pd.DataFrame:
    """Proportional sharing of the flows through the pass-through nodes, every period at
    once: the systems of the periods are independent, so each period's `(I - A)` is
    inverted in one stacked call (min-norm, as least squares gives where a cycle of managers
    makes it singular) and the products with the sparse right-hand sides are joins on
    (period, manager). Managers are keyed by name among managers, sellers by name among
    peers: the two sets of names may overlap. One row per delivery and seller reached."""
    via_seller = (flows["seller_kind"] != NodeKind.PEER).to_numpy()
    via_buyer = (flows["buyer_kind"] != NodeKind.PEER).to_numpy()
    periods, period_pos = np.unique(flows["period"].to_numpy(np.int64), return_inverse=True)
    seller = flows["seller"].to_numpy(object)
    buyer = flows["buyer"].to_numpy(object)
    energy = flows["energy_kwh"].to_numpy(float)
    fee = flows["fee"].to_numpy(float)
    managers = pd.Index(sorted(set(seller[via_seller]) | set(buyer[via_buyer])))
    k = len(managers)
    n_periods = len(periods)

    def node(positions: np.ndarray, names: np.ndarray) -> np.ndarray:
        """(period, manager) as one code: period position * k + manager position."""
        at = period_pos[positions] * k + managers.get_indexer(pd.Index(names))
        return np.asarray(at, dtype=np.int64)

    into = np.flatnonzero(via_buyer)
    inflow = np.bincount(node(into, buyer[into]), energy[into], minlength=n_periods * k)
    safe_inflow = np.where(inflow > 0, inflow, 1.0)

    # The right-hand side B: each peer's sale into a manager, keyed (period, manager, seller).
    from_peer = np.flatnonzero(via_buyer & ~via_seller)
    origins = pd.Index(sorted(set(seller[from_peer])))
    if len(origins) == 0:  # nothing entered from a peer: nothing is delivered
        return pd.DataFrame(columns=list(BILATERAL_COLUMNS))
    b_node = node(from_peer, buyer[from_peer])
    b_origin = origins.get_indexer(pd.Index(seller[from_peer]))

    # (I - A)^-1 and (I - A)^-1 W per period, stacked; identity where no manager sells to
    # another (then E = B and G = B_fee, the common case of one community).
    between = np.flatnonzero(via_buyer & via_seller)
    inverse: np.ndarray = np.broadcast_to(np.eye(k), (n_periods, k, k))
    weighted = np.zeros((n_periods, k, k))
    if len(between):
        to_k = node(between, buyer[between])
        from_j = node(between, seller[between])
        cell = to_k * k + from_j % k  # (period, k, j) flattened
        share = np.bincount(cell, energy[between] / safe_inflow[from_j], n_periods * k * k)
        rate = np.bincount(cell, fee[between] / safe_inflow[from_j], n_periods * k * k)
        system = np.eye(k) - share.reshape(n_periods, k, k)
        inverse = np.linalg.pinv(system)
        weighted = inverse @ rate.reshape(n_periods, k, k)

    # E = M B and G = M B_fee + (M W) E, as sums over (period, manager, seller) cells.
    o = len(origins)
    e_cell, e_value = _times_sparse(inverse, b_node, b_origin, energy[from_peer], k, o)
    g_parts = [
        _times_sparse(inverse, b_node, b_origin, fee[from_peer], k, o),
        _times_sparse(weighted, e_cell // o, e_cell % o, e_value, k, o),
    ]
    g_cell = np.concatenate([c for c, _ in g_parts])
    g_value = np.concatenate([v for _, v in g_parts])
    cells, code = np.unique(np.concatenate([e_cell, g_cell]), return_inverse=True)
    e_sum = np.bincount(code[: len(e_cell)], e_value, len(cells))
    g_sum = np.bincount(code[len(e_cell) :], g_value, len(cells))
    cell_node = cells // o  # sorted, as `cells` is

    # Each delivery out of a manager to a peer takes its part of every seller in that node.
    out = np.flatnonzero(via_seller & ~via_buyer)
    hub = node(out, seller[out])
    first = np.searchsorted(cell_node, hub, "left")
    count = np.searchsorted(cell_node, hub, "right") - first
    row = np.repeat(np.arange(len(out)), count)
    at = np.repeat(first - np.cumsum(count) + count, count) + np.arange(count.sum())
    part = energy[out][row] / safe_inflow[hub][row]
    fee_part = fee[out][row] / safe_inflow[hub][row]
    return pd.DataFrame(
        {
            "period": periods[period_pos[out][row]],
            "seller": np.asarray(origins, dtype=object)[cells[at] % o],
            "buyer": buyer[out][row],
            "energy_kwh": part * e_sum[at],
            "fee": part * g_sum[at] + fee_part * e_sum[at],
            "via_manager": True,
        }
    )


def _times_sparse(
    matrix: np.ndarray,
    node: np.ndarray,
    origin: np.ndarray,
    value: np.ndarray,
    k: int,
    n_origins: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The entries of `matrix[p] @ X[p]` for every period p, X given sparse by its entries
    (`node` = p * k + j, `origin`, `value`): their cells `(p * k + h) * n_origins + origin`
    and addends (a cell may repeat: the caller sums)."""
    period, j = np.divmod(node, k)
    h = np.arange(k)
    weights = matrix[period[:, None], h[None, :], j[:, None]]  # (entries, h)
    keep = weights != 0
    entry, target = np.nonzero(keep)
    return (
        ((period[entry] * k + target) * n_origins + origin[entry]),
        weights[keep] * value[entry],
    )
