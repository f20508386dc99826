"""Household load from the BDEW standard load profile H25 (demandlib), per household scaled
and varied (issue 14; docs/generator.md).

H25 is BDEW's 2025 household profile: measured in 2018 and 2019, one quarter-hourly day per
month and day type (working day, Saturday, Sunday or holiday), times a dynamisation
polynomial over the day of the year. It replaces H0 (1999: three seasons, from 1980s
measurements). demandlib 0.2.2's H0 (`ElecSlp`) cannot be used here anyway: it turns every
warning of the process into an error (`warnings.simplefilter("error")`, never undone) and
then fails on pandas 3.1's deprecation warning for its own `sort_index(inplace=True)`.

The profile is computed in local time (Europe/Berlin, with daylight saving time: people live
by the clock) for the quarter-hours of the year, averaged to the hours of the year in CET
(UTC+1, as the weather) and normalised to a sum of 1. Each household's load is

    load[n, t] = annual_kwh[n] * profile[t] * day[n, d(t)] * noise[n, t] / scale[n]

with `day` a lognormal factor per day (mean 1, sigma 0.15), `noise` a lognormal factor per
hour (mean 1, sigma 0.10) and `scale[n]` the sum over the year of the product, so that each
household uses exactly its drawn annual energy (before the rounding to watts).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

from p2pmarket.core.scenario import FloatArray

__all__ = ["DAY_SIGMA", "HOUR_SIGMA", "german_holidays", "h25_profile", "household_load_kw"]

DAY_SIGMA = 0.15
"""Standard deviation of the logarithm of a household's day factor."""
HOUR_SIGMA = 0.10
"""Standard deviation of the logarithm of a household's hourly noise."""


def h25_profile(year: int) -> FloatArray:
    """BDEW H25 over the hours of `year` in CET (UTC+1), summing to 1."""
    from demandlib.bdew import H25

    start = pd.Timestamp(year=year, month=1, day=1, tz="Europe/Berlin")
    end = pd.Timestamp(year=year + 1, month=1, day=1, tz="Europe/Berlin")
    quarters = pd.date_range(start, end, freq="15min", inclusive="left")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # demandlib's use of pandas' deprecated `inplace`
        profile = H25(quarters, holidays=german_holidays(year))
    values = np.asarray(profile, dtype=float).reshape(-1, 4).mean(axis=1)
    normalised: FloatArray = values / values.sum()
    return normalised


def household_load_kw(
    annual_kwh: FloatArray, profile: FloatArray, generators: Sequence[np.random.Generator]
) -> FloatArray:
    """The load (kW, hourly) of each household over the profile's hours: shape (households,
    hours). `generators` has one random generator per household for its variation."""
    hours = profile.size
    days = -(-hours // 24)
    day = np.empty((len(generators), days))
    noise = np.empty((len(generators), hours))
    for n, rng in enumerate(generators):
        day[n] = rng.lognormal(-(DAY_SIGMA**2) / 2, DAY_SIGMA, days)
        noise[n] = rng.lognormal(-(HOUR_SIGMA**2) / 2, HOUR_SIGMA, hours)
    shape = profile[None, :] * np.repeat(day, 24, axis=1)[:, :hours] * noise
    load: FloatArray = shape * (annual_kwh / shape.sum(axis=1))[:, None]
    return load


def german_holidays(year: int) -> list[date]:
    """Public holidays in every German state: they count as Sundays in the BDEW profiles."""
    easter = _easter(year)
    days = [
        date(year, 1, 1),
        easter - timedelta(days=2),  # Good Friday
        easter + timedelta(days=1),  # Easter Monday
        date(year, 5, 1),
        easter + timedelta(days=39),  # Ascension
        easter + timedelta(days=50),  # Whit Monday
        date(year, 12, 25),
        date(year, 12, 26),
    ]
    if year >= 1990:
        days.append(date(year, 10, 3))  # Day of German Unity
    return sorted(days)


def _easter(year: int) -> date:
    """Easter Sunday of the Gregorian calendar (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return date(year, month, day + 1)
