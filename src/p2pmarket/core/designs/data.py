"""Per-peer arrays of a scenario: loads, bounds, offers, fees and community groups.

Everything here is vectorised numpy over peers and periods; the designs (`links`, `hubs`)
build their trade links from these arrays.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd

from p2pmarket.core.scenario import FloatArray, Scenario, series, stacked

__all__ = ["BoolArray", "IntArray", "PeerData", "peer_data", "remember_peer_data"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class PeerData:
    """Per-peer arrays aligned with `scenario.peers` (shape (peers,) or (peers, periods))."""

    ids: pd.Index
    role: npt.NDArray[np.str_]
    group: IntArray
    load_kw: FloatArray
    min_kw: FloatArray
    max_kw: FloatArray
    offer_per_kwh: FloatArray
    export_fee: FloatArray
    can_sell: BoolArray
    can_buy: BoolArray
    group_ids: tuple[str, ...]
    """Community id per group; a peer listed in no community is a group named by its id."""
    group_size: IntArray
    group_intra_fee: FloatArray
    group_export_fee: FloatArray
    pair_fee: FloatArray
    """(groups, groups, periods), NaN where no contract is set."""
    has_storage: BoolArray
    can_buy_always: BoolArray
    """Peers that can buy in every period whatever their load: storage, flexible demand or
    a buy price (`can_buy` adds a load in some period)."""

    def periods(self, start: int, stop: int) -> PeerData:
        """The same peers over periods `start` to `stop` (what `peer_data` gives for the
        scenario cut to those periods, `p2pmarket.core.horizon.period_slice`), by slicing
        the arrays rather than reading the scenario again."""
        cut = slice(start, stop)
        load, max_kw = self.load_kw[:, cut], self.max_kw[:, cut]
        return replace(
            self,
            load_kw=load,
            min_kw=self.min_kw[:, cut],
            max_kw=max_kw,
            offer_per_kwh=self.offer_per_kwh[:, cut],
            export_fee=self.export_fee[:, cut],
            can_sell=(max_kw > 0).any(axis=1) | self.has_storage,
            can_buy=(load > 0).any(axis=1) | self.can_buy_always,
            group_intra_fee=self.group_intra_fee[:, cut],
            group_export_fee=self.group_export_fee[:, cut],
            pair_fee=self.pair_fee[:, :, cut],
        )


_MEMO: dict[int, tuple[weakref.ref[Scenario], PeerData]] = {}
"""The last few scenarios' arrays, by object identity (insertion order: oldest first). The
scenarios are held weakly: the cuts of a horizon (its periods or windows, each a scenario of
its own) are freed with their arrays once cleared, not kept alive here — 64 cuts of a
10,000-peer market were half a million peers for Python's collector to go through."""
_MEMO_SIZE = 64


def remember_peer_data(s: Scenario, data: PeerData) -> None:
    """Let `peer_data(s)` answer `data` for this very scenario object (a scenario is frozen,
    so its arrays never change) while it lives: the last `_MEMO_SIZE` are kept, by identity.
    Each step is one dict operation (atomic under the GIL); threads racing here at worst
    evict one entry too many, which only costs a recomputation."""
    key = id(s)

    def forget(ref: weakref.ref[Scenario]) -> None:
        entry = _MEMO.get(key)
        if entry is not None and entry[0] is ref:
            _MEMO.pop(key, None)

    _MEMO.pop(key, None)
    _MEMO[key] = (weakref.ref(s, forget), data)
    while len(_MEMO) > _MEMO_SIZE:
        try:
            _MEMO.pop(next(iter(_MEMO)), None)
        except (RuntimeError, StopIteration):  # changed by another thread meanwhile
            break


def peer_data(s: Scenario) -> PeerData:
    """Per-peer arrays of a scenario: loads, bounds, offers, fees and community groups
    (computed once per scenario object: a clearing asks several times)."""
    hit = _MEMO.get(id(s))
    if hit is not None and hit[0]() is s:
        remember_peer_data(s, hit[1])  # the newest again: a horizon outlives its windows
        return hit[1]
    data = _peer_data(s)
    remember_peer_data(s, data)
    return data


def _peer_data(s: Scenario) -> PeerData:
    T = s.periods
    n = len(s.peers)
    ids = pd.Index(s.peer_ids, name="peer")
    load = stacked([p.load_kw for p in s.peers], T)
    gen = [p.generation for p in s.peers]
    min_kw = stacked([g.min_kw if g else None for g in gen], T)
    max_kw = stacked([g.max_kw if g else None for g in gen], T)
    offer = stacked([g.offer_per_kwh if g else None for g in gen], T)
    export_fee = stacked([p.export_fee for p in s.peers], T)
    has_storage = np.array([p.storage is not None for p in s.peers])
    has_flex = np.array([len(p.flexible_load) > 0 for p in s.peers])
    absorbs = np.array([p.buy_price_per_kwh is not None for p in s.peers])

    # Groups: the listed communities, then one group per peer listed nowhere.
    group = np.full(n, -1, dtype=np.int64)
    position = {pid: i for i, pid in enumerate(s.peer_ids)}
    group_ids: list[str] = []
    intra: list[FloatArray] = []
    community_export: list[FloatArray | None] = []
    for c in s.communities:
        group[[position[m] for m in c.members]] = len(group_ids)
        group_ids.append(c.id)
        intra.append(series(c.intra_fee, T))
        community_export.append(None if c.export_fee is None else series(c.export_fee, T))
    communities = len(group_ids)
    lone = np.flatnonzero(group < 0)
    group[lone] = communities + np.arange(lone.size)
    group_ids.extend(s.peers[i].id for i in lone)
    size = np.bincount(group, minlength=len(group_ids)).astype(np.int64)
    group_export = np.zeros((len(group_ids), T))
    for g, fee in enumerate(community_export):
        if fee is not None:
            group_export[g] = fee
        elif size[g] == 1:
            group_export[g] = export_fee[np.flatnonzero(group == g)[0]]
    group_export[communities:] = export_fee[lone]  # a lone peer's group: its own fee
    group_intra = np.zeros((len(group_ids), T))  # a lone peer's group: no intra fee
    if intra:
        group_intra[:communities] = np.stack(intra)

    pair = np.full((len(group_ids), len(group_ids), T), np.nan)
    gindex = {gid: g for g, gid in enumerate(group_ids[: len(s.communities)])}
    for cf in s.community_fees:
        pair[gindex[cf.from_], gindex[cf.to]] = series(cf.fee, T)

    can_sell = (max_kw > 0).any(axis=1) | has_storage
    can_buy_always = has_flex | has_storage | absorbs
    can_buy = (load > 0).any(axis=1) | can_buy_always
    return PeerData(
        ids=ids,
        role=np.array([p.role for p in s.peers]),
        group=group,
        load_kw=load,
        min_kw=min_kw,
        max_kw=max_kw,
        offer_per_kwh=offer,
        export_fee=export_fee,
        can_sell=can_sell,
        can_buy=can_buy,
        group_ids=tuple(group_ids),
        group_size=size,
        group_intra_fee=group_intra,
        group_export_fee=group_export,
        pair_fee=pair,
        has_storage=has_storage,
        can_buy_always=can_buy_always,
    )
