"""A German residential community over a year of hours, generated offline (issue 14):
households on streets, some with rooftop PV and some of those with a battery, and the grid
with a time-of-use tariff. docs/generator.md gives every choice and its source.

Randomness is seeded and laid out so that a household does not change when others are added
or when the shares change: the street sizes come from the stream `(seed, 0)`, household i's
parameters from `(seed, 1, i)` and its load's variation from `(seed, 2, i)` (numpy
`SeedSequence` spawn keys). PV goes to the `round(N * pv_share)` households with the
smallest PV key, batteries to the `round(n_pv * battery_share)` PV households with the
smallest battery key: raising a share only adds PV or batteries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from p2pmarket.core.scenario import FloatArray, Scenario
from p2pmarket.core.scenario.limits import DEFAULT_LIMITS, Limits
from p2pmarket.core.scenario.messages import plural, scenario_error
from p2pmarket.core.scenario.rules import check_size
from p2pmarket.errors import InputError, MissingExtraError, OptionError
from p2pmarket.generate.load import h25_profile, household_load_kw
from p2pmarket.generate.weather import (
    DEFAULT_WEATHER_ZONE,
    PV_TILT_DEG,
    WEATHER_ZONES,
    check_zone,
    hour_starts,
    pv_kw_per_kwp,
    read_try,
)

__all__ = [
    "ANNUAL_KWH",
    "BATTERY_EFFICIENCY",
    "BATTERY_KWH_PER_KWP",
    "DEFAULT_YEAR",
    "FEED_IN_PER_KWH",
    "GRID_COMMUNITY",
    "INTER_FEE_PER_KWH",
    "INTRA_FEE_PER_KWH",
    "PV_AZIMUTH_DEG",
    "PV_KWP",
    "STREET_SIZE",
    "TARIFF_PER_KWH",
    "Households",
    "check_arguments",
    "community",
    "draw_households",
    "require_year_extra",
    "tariff_per_kwh",
]

DEFAULT_YEAR = 2023
"""A recent common (non-leap) year: 8,760 hours."""
YEARS = (1901, 2099)
ANNUAL_KWH = (1500.0, 6000.0)
"""Annual consumption of a household (kWh), drawn uniformly; whole kWh."""
PV_KWP = (3.0, 10.0)
"""Rated power of a rooftop PV system (kWp), drawn uniformly; tenths of a kWp."""
PV_AZIMUTH_DEG = (135, 225)
"""Orientation of a roof (degrees from north), whole degrees drawn uniformly: south-east to
south-west."""
BATTERY_KWH_PER_KWP = (1.0, 1.5)
"""Battery capacity per kWp of the household's PV, drawn uniformly; tenths of a kWh. The
battery's power is half its capacity (kW)."""
BATTERY_EFFICIENCY = 0.95
STREET_SIZE = (10, 25)
"""Households per street (one community per street), drawn uniformly."""
TARIFF_PER_KWH = {"night": 0.28, "day": 0.34, "peak": 0.42}
"""The grid's time-of-use tariff (EUR/kWh): night 0-6 h, peak 17-21 h, day otherwise (CET)."""
FEED_IN_PER_KWH = 0.08
"""What the grid pays for energy fed in (EUR/kWh): about the German feed-in tariff of 2023."""
INTRA_FEE_PER_KWH = 0.01
"""Fee on a trade between households of one street (EUR/kWh)."""
INTER_FEE_PER_KWH = 0.03
"""Fee on a sale from one street to another (EUR/kWh); sales to the grid pay none."""
GRID_COMMUNITY = "utility"
"""The community of the grid alone: contracts from every street to it carry a fee of 0."""
ROUNDING = 1000
"""Series are rounded to watts (1/1000 kW): written as decimals, read back exactly."""

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Households:
    """The drawn parameters of every household, in id order (0 where it has no PV or no
    battery). `pv` and `battery` are the masks of the households that have them."""

    ids: tuple[str, ...]
    street: tuple[str, ...]
    annual_kwh: FloatArray
    pv_kwp: FloatArray
    pv_azimuth_deg: IntArray
    battery_kwh: FloatArray
    battery_kw: FloatArray

    @property
    def pv(self) -> BoolArray:
        mask: BoolArray = self.pv_kwp > 0
        return mask

    @property
    def battery(self) -> BoolArray:
        mask: BoolArray = self.battery_kwh > 0
        return mask

    @property
    def streets(self) -> dict[str, list[str]]:
        """Street id -> its households, in order."""
        members: dict[str, list[str]] = {}
        for household, street in zip(self.ids, self.street, strict=True):
            members.setdefault(street, []).append(household)
        return members


def require_year_extra(feature: str) -> None:
    """Refuse with a `MissingExtraError` (extra `year`) unless demandlib and pvlib import."""
    try:
        import demandlib.bdew  # noqa: F401
        import pvlib  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(feature, exc.name or "pvlib", "year") from None


def draw_households(
    households: int, pv_share: float, battery_share: float, *, seed: int = 0
) -> Households:
    """Draw each household's street, annual consumption, PV and battery (module docstring)."""
    _check_count(households, "households")
    _check_share(pv_share, "pv_share")
    _check_share(battery_share, "battery_share")
    _check_count(seed, "seed", minimum=0)
    width = max(4, len(str(households)))
    ids = tuple(f"h{i + 1:0{width}d}" for i in range(households))
    streets = _street_sizes(households, _stream(seed, 0))
    street_width = max(2, len(str(len(streets))))
    street = tuple(
        f"street-{s + 1:0{street_width}d}" for s, size in enumerate(streets) for _ in range(size)
    )
    draws = np.empty((households, 6))
    for i in range(households):
        rng = _stream(seed, 1, i)
        draws[i] = (
            rng.uniform(*ANNUAL_KWH),
            rng.random(),  # PV key
            rng.uniform(*PV_KWP),
            rng.integers(PV_AZIMUTH_DEG[0], PV_AZIMUTH_DEG[1] + 1),
            rng.random(),  # battery key
            rng.uniform(*BATTERY_KWH_PER_KWP),
        )
    annual, pv_key, kwp, azimuth, battery_key, kwh_per_kwp = draws.T
    pv = _smallest(pv_key, _rounded(households * pv_share))
    battery = np.zeros(households, dtype=bool)
    pv_index = np.flatnonzero(pv)
    battery[pv_index[_smallest(battery_key[pv], _rounded(pv.sum() * battery_share))]] = True
    pv_kwp = np.where(pv, np.round(kwp, 1), 0.0)
    battery_kwh = np.where(battery, np.round(pv_kwp * kwh_per_kwp, 1), 0.0)
    return Households(
        ids=ids,
        street=street,
        annual_kwh=np.rint(annual),
        pv_kwp=pv_kwp,
        pv_azimuth_deg=azimuth.astype(np.int64),
        battery_kwh=battery_kwh,
        battery_kw=battery_kwh / 2,
    )


def community(
    households: int,
    pv_share: float,
    battery_share: float,
    *,
    year: int = DEFAULT_YEAR,
    seed: int = 0,
    hours: int | None = None,
    weather_zone: int = DEFAULT_WEATHER_ZONE,
    limits: Limits | None = None,
) -> Scenario:
    """A residential community of `households` over the hours of `year` (or its first
    `hours`), validated by the scenario's rules (size `limits`: default `Limits()`).

    A share `pv_share` of the households has rooftop PV (DWD TRY 2010 weather of
    `weather_zone`, pvlib), a share `battery_share` of those a battery; the others are
    consumers. Load from BDEW's H25 profile (demandlib). Invalid arguments raise an
    `OptionError` naming the argument; a missing demandlib or pvlib a `MissingExtraError`
    (extra `year`).
    """
    periods = check_arguments(
        households, pv_share, battery_share,
        year=year, seed=seed, hours=hours, weather_zone=weather_zone, limits=limits,
    )  # fmt: skip
    drawn = draw_households(households, pv_share, battery_share, seed=seed)
    require_year_extra("p2pmarket.generate.community")

    noise = [_stream(seed, 2, i) for i in range(households)]
    load = _watts(household_load_kw(drawn.annual_kwh, h25_profile(year), noise)[:, :periods])
    pv = drawn.pv
    pv_kw = np.zeros((0, periods))
    if pv.any():
        azimuths, which = np.unique(drawn.pv_azimuth_deg[pv], return_inverse=True)
        per_kwp = pv_kw_per_kwp(read_try(weather_zone, year), azimuths)[:, :periods]
        pv_kw = _watts(drawn.pv_kwp[pv][:, None] * per_kwp[which])
    offer = tariff_per_kwh(year, periods)

    peak_kw = float(load.sum(axis=0).max())
    peers: list[dict[str, Any]] = [
        {
            "id": "grid",
            "role": "grid",
            "generation": {
                "min_kw": 0.0,
                "max_kw": float(math.ceil(1.5 * peak_kw)),
                "offer_per_kwh": tuple(offer.tolist()),
            },
            "buy_price_per_kwh": FEED_IN_PER_KWH,
        }
    ]
    pv_rows = dict(zip(np.flatnonzero(pv).tolist(), range(int(pv.sum())), strict=True))
    for i, household in enumerate(drawn.ids):
        peer: dict[str, Any] = {
            "id": household,
            "role": "prosumer" if pv[i] else "consumer",
            "load_kw": tuple(load[i].tolist()),
        }
        if pv[i]:
            peer["generation"] = {
                "min_kw": 0.0,
                "max_kw": tuple(pv_kw[pv_rows[i]].tolist()),
                "offer_per_kwh": 0.0,
            }
            peer["export_fee"] = INTER_FEE_PER_KWH
        if drawn.battery[i]:
            peer["storage"] = {
                "capacity_kwh": float(drawn.battery_kwh[i]),
                "power_kw": float(drawn.battery_kw[i]),
                "charge_efficiency": BATTERY_EFFICIENCY,
                "discharge_efficiency": BATTERY_EFFICIENCY,
                "initial_soc": 0.0,
                "final_soc": 0.0,
            }
        peers.append(peer)
    streets = drawn.streets
    data = {
        "name": f"community-{households}-households",
        "description": _description(drawn, year, seed, periods, weather_zone),
        "currency": "EUR",
        "periods": periods,
        "period_hours": 1.0,
        "design": "p2p",
        "objective": "system-cost",
        "communities": (
            {"id": GRID_COMMUNITY, "members": ("grid",)},
            *(
                {
                    "id": street,
                    "members": tuple(members),
                    "intra_fee": INTRA_FEE_PER_KWH,
                    "export_fee": INTER_FEE_PER_KWH,
                }
                for street, members in streets.items()
            ),
        ),
        "community_fees": tuple(
            {"from": street, "to": GRID_COMMUNITY, "fee": 0.0} for street in streets
        ),
        "peers": tuple(peers),
    }
    # The data is built here as tuples, in the schema's types: it is validated by the
    # schema and the cross-field rules directly (`Scenario.from_dict` would first walk every
    # value of every series in Python, some seconds for 1,000 households over a year).
    try:
        return Scenario.model_validate(data, context={"limits": limits or DEFAULT_LIMITS})
    except ValidationError as exc:
        raise scenario_error(exc, data, Scenario) from None


def check_arguments(
    households: int,
    pv_share: float,
    battery_share: float,
    *,
    year: int = DEFAULT_YEAR,
    seed: int = 0,
    hours: int | None = None,
    weather_zone: int = DEFAULT_WEATHER_ZONE,
    limits: Limits | None = None,
) -> int:
    """Refuse invalid arguments of `community` with an `OptionError` naming the argument,
    before any work; the number of periods the community will have."""
    _check_count(households, "households")
    _check_share(pv_share, "pv_share")
    _check_share(battery_share, "battery_share")
    _check_count(year, "year", minimum=YEARS[0], maximum=YEARS[1])
    _check_count(seed, "seed", minimum=0)
    in_year = len(hour_starts(year))
    if hours is not None:
        _check_count(hours, "hours", maximum=in_year, unit=f"the hours of {year}")
    check_zone(weather_zone)
    periods = hours if hours is not None else in_year
    try:
        check_size(periods, range(households + 1), limits or DEFAULT_LIMITS)
    except InputError as exc:
        raise OptionError("households", exc.detail) from None
    return periods


def tariff_per_kwh(year: int, periods: int) -> FloatArray:
    """The grid's time-of-use price (EUR/kWh) in each of the first `periods` hours of `year`."""
    hour = hour_starts(year, periods).hour.to_numpy()
    price = np.full(periods, TARIFF_PER_KWH["day"])
    price[hour < 6] = TARIFF_PER_KWH["night"]
    price[(hour >= 17) & (hour < 21)] = TARIFF_PER_KWH["peak"]
    return price


def _description(drawn: Households, year: int, seed: int, periods: int, zone: int) -> str:
    pv, battery = drawn.pv, drawn.battery
    return (
        f"Generated by p2pmarket generate community: {plural(len(drawn.ids), 'household')} on"
        f" {plural(len(drawn.streets), 'street')} (one community each), {int(pv.sum())} with"
        " rooftop PV"
        f" ({drawn.pv_kwp.sum():.1f} kWp, tilt {PV_TILT_DEG:g} deg), {int(battery.sum())} of"
        f" them with a battery ({drawn.battery_kwh.sum():.1f} kWh); seed {seed}. Load: BDEW"
        f" H25 (demandlib {_version('demandlib')}), weather: DWD TRY 2010 zone {zone:02d}"
        f" ({WEATHER_ZONES[zone]}; Datenbasis: Deutscher Wetterdienst, eigene Bearbeitung),"
        f" PV: pvlib {_version('pvlib')}. Period 0 is {year}-01-01 00:00-01:00 CET (UTC+1,"
        f" no daylight saving time); {periods} hourly periods. Grid: time-of-use tariff"
        f" (EUR/kWh) night {TARIFF_PER_KWH['night']}, day {TARIFF_PER_KWH['day']}, peak 17-21 h"
        f" {TARIFF_PER_KWH['peak']}, feed-in {FEED_IN_PER_KWH}. See docs/generator.md."
    )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def _stream(seed: int, *key: int) -> np.random.Generator:
    """The random stream `(seed, *key)`: independent of every other key."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _watts(values: FloatArray) -> FloatArray:
    """kW rounded to watts, as the nearest float to the decimal written (k / 1000 is
    correctly rounded), non-negative and without -0."""
    rounded: FloatArray = np.rint(np.clip(values, 0.0, None) * ROUNDING) / ROUNDING + 0.0
    return rounded


def _street_sizes(households: int, rng: np.random.Generator) -> list[int]:
    """Sizes from STREET_SIZE that add up to `households`; the last street takes what is
    left, which is never below the smallest size (unless all households fit on one)."""
    low, high = STREET_SIZE
    sizes: list[int] = []
    left = households
    while left > high:
        size = int(rng.integers(low, min(high, left - low) + 1))
        sizes.append(size)
        left -= size
    sizes.append(left)
    return sizes


def _smallest(keys: FloatArray, count: int) -> BoolArray:
    """The mask of the `count` smallest keys."""
    mask = np.zeros(keys.size, dtype=bool)
    mask[np.argsort(keys, kind="stable")[:count]] = True
    return mask


def _rounded(value: float) -> int:
    """The nearest whole number, halves up (N * share as written: 10 * 0.35 is 3.5, not
    3.4999999999999996)."""
    return math.floor(round(value, 9) + 0.5)


def _check_count(
    value: object,
    name: str,
    *,
    minimum: int = 1,
    maximum: int | None = None,
    unit: str | None = None,
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise OptionError(name, f"expected a whole number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        span = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        what = f" ({unit})" if unit else ""
        raise OptionError(name, f"must be {span}{what}, got {value}")


def _check_share(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise OptionError(name, f"expected a share from 0 to 1, got {value!r}")
    if not 0 <= float(value) <= 1:  # NaN fails too
        raise OptionError(name, f"must be a share from 0 to 1, got {value}")
