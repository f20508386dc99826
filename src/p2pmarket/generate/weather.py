"""Rooftop PV availability from typical-year weather, offline (issue 14).

Weather: the DWD test reference years 2010 (TRY 2010, "mittleres Jahr", reference period
1988-2007) of the 15 German climate zones, as demandlib ships them
(`demandlib/vdi/resources_weather/TRY2010_NN_Jahr.dat`). Each file holds 8,760 hourly rows
in CET (MEZ, UTC+1, no daylight saving time); row `HH` (1..24) is the hour that *ends* at
HH:00. Columns used: `B` direct and `D` diffuse irradiance on the horizontal plane (W/m²),
`t` air temperature at 2 m (°C), `WG` wind speed at 10 m (m/s), `p` pressure (hPa). The
station's latitude, longitude and height are read from the file's header.

PV, per kWp, with pvlib (docs/generator.md):

1. solar position (NREL SPA) at the middle of each hour;
2. DNI = (GHI - DHI) / cos(zenith) (`pvlib.irradiance.dni`: zero below 2° elevation);
3. transposition to the tilted plane, Hay-Davies sky diffuse, ground albedo 0.2;
4. incidence-angle losses on the beam (`pvlib.iam.physical`);
5. cell temperature (SAPM, close-mounted glass/glass roof modules, wind from the file);
6. DC power (PVWatts, -0.4 %/K), system losses (`pvwatts_losses` without outages: 11.4 %);
7. AC power (PVWatts inverter, 96 % nominal efficiency, DC/AC ratio 1.1);
8. zero in every hour in which the sun is below the horizon from its start to its end.

Every step is linear in the rated power, so one profile per distinct azimuth is computed and
scaled by each household's kWp. Hours are those of the scenario's year (8,760, or 8,784 in a
leap year: 29 February repeats the weather of the 28th); the sun is that of the year's dates.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from importlib import resources

import numpy as np
import numpy.typing as npt
import pandas as pd

from p2pmarket.core.scenario import FloatArray
from p2pmarket.errors import OptionError

__all__ = [
    "DEFAULT_WEATHER_ZONE",
    "PV_TILT_DEG",
    "WEATHER_ZONES",
    "TryWeather",
    "hour_starts",
    "pv_kw_per_kwp",
    "read_try",
]

WEATHER_ZONES: dict[int, str] = {
    1: "Bremerhaven",
    2: "Rostock",
    3: "Hamburg",
    4: "Potsdam",
    5: "Essen",
    6: "Bad Marienberg",
    7: "Kassel",
    8: "Braunlage",
    9: "Chemnitz",
    10: "Hof",
    11: "Fichtelberg",
    12: "Mannheim",
    13: "Muehldorf",
    14: "Stoetten",
    15: "Garmisch-Partenkirchen",
}
"""The DWD TRY 2010 climate zones and the station of each (from the files' headers)."""
DEFAULT_WEATHER_ZONE = 4
"""TRY 2010 zone 4, Potsdam (Nordostdeutsches Tiefland): the reference climate of German
building energy rules (DIN V 18599, GEG) and a middle of the range of German PV yields."""

PV_TILT_DEG = 35.0
"""Tilt of every roof's modules (°): a common pitched roof, close to the optimum in Germany."""
ALBEDO = 0.2
TEMPERATURE_MODEL = "close_mount_glass_glass"
GAMMA_PDC_PER_K = -0.004
DC_AC_RATIO = 1.1
INVERTER_EFFICIENCY = 0.96
CET = "Etc/GMT-1"  # UTC+1 all year (POSIX sign): the TRY's MEZ

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class TryWeather:
    """One TRY 2010 zone's hourly weather, laid over the hours of `year` (CET)."""

    zone: int
    station: str
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    year: int
    ghi_w_per_m2: FloatArray
    dhi_w_per_m2: FloatArray
    temp_air_c: FloatArray
    wind_m_per_s: FloatArray
    pressure_hpa: FloatArray

    @property
    def source(self) -> str:
        return f"TRY2010_{self.zone:02d}_Jahr.dat"


def check_zone(zone: object) -> int:
    """The zone as a number from 1 to 15, or an `OptionError` naming `weather_zone`."""
    if isinstance(zone, bool) or not isinstance(zone, int) or zone not in WEATHER_ZONES:
        known = ", ".join(f"{z} {name}" for z, name in WEATHER_ZONES.items())
        raise OptionError(
            "weather_zone", f"{zone!r} is not a DWD TRY 2010 zone; give 1 to 15 ({known})"
        )
    return zone


def hour_starts(year: int, periods: int | None = None) -> pd.DatetimeIndex:
    """The starts of the hours of `year` in CET (UTC+1), or of its first `periods` hours."""
    start = pd.Timestamp(year=year, month=1, day=1, tz=CET)
    count = periods if periods is not None else _hours_in(year)
    return pd.date_range(start, periods=count, freq="h")


def _hours_in(year: int) -> int:
    return 8784 if pd.Timestamp(year=year, month=1, day=1).is_leap_year else 8760


_LOCATION = re.compile(r"Lage:\s*(\d+)°(\d+)'N.*?(\d+)°(\d+)'O.*?(-?\d+)\s*Meter", re.DOTALL)


def read_try(zone: int, year: int) -> TryWeather:
    """Read the TRY 2010 file of `zone` from demandlib's package data, laid over `year`."""
    zone = check_zone(zone)
    name = f"TRY2010_{zone:02d}_Jahr.dat"
    text = (
        resources.files("demandlib.vdi")
        .joinpath("resources_weather", name)
        .read_text(encoding="utf-8")
    )
    lines = text.splitlines()
    stars = next(i for i, line in enumerate(lines) if line.startswith("***"))
    columns = lines[stars - 1].split()
    rows = np.array([line.split() for line in lines[stars + 1 :] if line.strip()], dtype=float)
    table = dict(zip(columns, rows.T, strict=True))
    found = _LOCATION.search("\n".join(lines[:stars]))
    station = re.search(r"Station:\s*(.+?)\s{2,}", text)
    if found is None or station is None or rows.shape[0] != 8760:
        raise OptionError("weather_zone", f"{name} is not a DWD TRY 2010 file as expected")
    lat_d, lat_m, lon_d, lon_m, height = (float(g) for g in found.groups())
    # 29 February (leap years) repeats the 28th: rows 59 days x 24 h on are shifted by a day.
    order = np.arange(8760)
    if _hours_in(year) == 8784:
        feb28 = np.arange(58 * 24, 59 * 24)
        order = np.concatenate([order[: 59 * 24], feb28, order[59 * 24 :]])

    def column(key: str) -> FloatArray:
        values: FloatArray = table[key][order]
        return values

    return TryWeather(
        zone=zone,
        station=station.group(1),
        latitude_deg=lat_d + lat_m / 60,
        longitude_deg=lon_d + lon_m / 60,
        altitude_m=height,
        year=year,
        ghi_w_per_m2=column("B") + column("D"),
        dhi_w_per_m2=column("D"),
        temp_air_c=column("t"),
        wind_m_per_s=column("WG"),
        pressure_hpa=column("p"),
    )


def pv_kw_per_kwp(
    weather: TryWeather, azimuths_deg: IntArray, tilt_deg: float = PV_TILT_DEG
) -> FloatArray:
    """AC power (kW per kWp of modules) in every hour of the weather's year, one row per
    azimuth (degrees from north, 180 = south): shape (azimuths, hours)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # pvlib's own use of pandas' deprecated names, and its divisions at night
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        ac, sun_up = _ac_per_kwp(weather, np.asarray(azimuths_deg, dtype=float), tilt_deg)
    power: FloatArray = np.where(sun_up[None, :], np.clip(ac, 0.0, None), 0.0)
    return power


def _ac_per_kwp(
    weather: TryWeather, azimuths_deg: FloatArray, tilt_deg: float
) -> tuple[FloatArray, BoolArray]:
    """AC power per kWp (azimuths x hours), and whether the sun is up in each hour (above
    the horizon at the hour's start or at its end)."""
    import pvlib

    times = hour_starts(weather.year)
    edges = hour_starts(weather.year, len(times) + 1)
    where = {
        "latitude": weather.latitude_deg,
        "longitude": weather.longitude_deg,
        "altitude": weather.altitude_m,
    }
    sun = pvlib.solarposition.get_solarposition(
        times + pd.Timedelta(minutes=30),
        pressure=weather.pressure_hpa * 100,
        temperature=weather.temp_air_c,
        **where,
    )
    edge = pvlib.solarposition.get_solarposition(edges, **where)["apparent_elevation"]
    edge_elevation = edge.to_numpy()
    sun_up: BoolArray = (edge_elevation[:-1] > 0) | (edge_elevation[1:] > 0)
    zenith = sun["apparent_zenith"].to_numpy()[None, :]
    solar_azimuth = sun["azimuth"].to_numpy()[None, :]
    ghi, dhi = weather.ghi_w_per_m2[None, :], weather.dhi_w_per_m2[None, :]
    surface_azimuth = azimuths_deg[:, None]
    poa = pvlib.irradiance.get_total_irradiance(
        surface_tilt=tilt_deg,
        surface_azimuth=surface_azimuth,
        solar_zenith=zenith,
        solar_azimuth=solar_azimuth,
        dni=_array(pvlib.irradiance.dni(ghi, dhi, zenith)),
        ghi=ghi,
        dhi=dhi,
        dni_extra=pvlib.irradiance.get_extra_radiation(times).to_numpy()[None, :],
        model="haydavies",
        albedo=ALBEDO,
    )
    aoi = pvlib.irradiance.aoi(tilt_deg, surface_azimuth, zenith, solar_azimuth)
    beam = _array(poa["poa_direct"]) * _array(pvlib.iam.physical(aoi))
    effective = beam + _array(poa["poa_diffuse"])
    cell_c = pvlib.temperature.sapm_cell(
        _array(poa["poa_global"]),
        weather.temp_air_c[None, :],
        weather.wind_m_per_s[None, :],
        **pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][TEMPERATURE_MODEL],
    )
    dc = _array(pvlib.pvsystem.pvwatts_dc(effective, cell_c, 1.0, GAMMA_PDC_PER_K))
    dc *= 1 - pvlib.pvsystem.pvwatts_losses(availability=0.0) / 100
    ac = pvlib.inverter.pvwatts(dc, 1.0 / DC_AC_RATIO, eta_inv_nom=INVERTER_EFFICIENCY)
    return _array(ac), sun_up


def _array(values: object) -> FloatArray:
    """pvlib's result as a float array, NaN (the sun behind the plane or below) as 0."""
    array: FloatArray = np.nan_to_num(np.asarray(values, dtype=float))
    return array
