"""Geocoding of stated places (services/coder/geo.py), alone and in events coded from real text.

Expected coordinates are the places' well-known centres, written here independently of the
gazetteer; a coded event must land within 25 km of them, and carry the GeoNames id of the
feature (looked up on geonames.org: Beijing 1816670, Zürich 2657896, New York City 5128581,
Brussels 2800866; the countries Ukraine 690791 and Palestine 6254930).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from services.coder.coding import ALL_ROOTS, default_coder
from services.coder.core import code_articles
from services.coder.geo import event_location, resolve_place
from services.common import schemas
from tests.integration.seed_events import seed_article_mappings

PARIS_FRANCE, PARIS_TEXAS = 2988507, 4717560


def km_between(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, Earth radius 6371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371 * math.asin(math.sqrt(a))


def test_a_shared_city_name_goes_to_the_actors_country() -> None:
    domestic = resolve_place("Paris", stated_country="FRA", actor_countries=("USA", "USA"))
    assert domestic is not None and domestic.geonames_id == PARIS_TEXAS
    abroad = resolve_place("Paris", stated_country="FRA", actor_countries=("USA", "RUS"))
    assert abroad is not None and abroad.geonames_id == PARIS_FRANCE
    # The stated country and one actor outvote a single actor's country.
    visit = resolve_place("Paris", stated_country="FRA", actor_countries=("USA", "FRA"))
    assert visit is not None and visit.geonames_id == PARIS_FRANCE


def test_a_tie_goes_to_the_larger_city() -> None:
    summit = resolve_place("Geneva", stated_country="CHE", actor_countries=("USA", "RUS"))
    assert summit is not None and (summit.country, summit.precision) == ("CHE", "city")


def test_an_alternate_spelling_finds_the_city() -> None:
    kiev = resolve_place("Kiev")
    assert kiev is not None and (kiev.geonames_id, kiev.name) == (703448, "Kyiv")


def test_a_country_name_resolves_to_the_country_centre() -> None:
    ukraine = resolve_place("Ukraine")
    assert ukraine is not None
    assert (ukraine.geonames_id, ukraine.feature_class, ukraine.precision) == (
        690791,
        "A",
        "country",
    )
    assert km_between(ukraine.latitude, ukraine.longitude, 49.0, 32.0) < 25


def test_a_place_known_only_by_its_country_falls_back_to_the_country() -> None:
    location = event_location("the Gaza Strip", "PSE", ("ISR", "PSE"))
    assert location["name"] == "the Gaza Strip"
    assert (location["geonames_id"], location["precision"]) == (6254930, "country")
    assert event_location("Narnia", None, ("USA", "RUS")) == {"name": "Narnia", "country": None}


def _petr2(eval_dir: Path, record_id: str) -> dict[str, Any]:
    path = eval_dir / "events" / "normalized" / "petr2_gsr_validation.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["id"] == record_id:
            return {"id": record_id, "text": record["sentence"], "published": record["date"]}
    raise AssertionError(f"{record_id} not in {path}")


def _extraction(eval_dir: Path, prefix: str) -> dict[str, Any]:
    truth = json.loads((eval_dir / "extraction" / "ground-truth.json").read_text("utf-8"))
    (key,) = [key for key in truth if key.startswith(prefix)]
    return {"id": prefix, "text": truth[key]["articleBody"], "published": "2019-07-10"}


# (article, the event's source and target countries, expected: GeoNames id, lat, lon, precision)
REAL_PLACES = [
    ("petr2:AFP0808020937_1", ("USA", "CHN"), (1816670, 39.9042, 116.4074, "city")),  # Beijing
    ("petr2:AFP0808020937_1", ("GBR", "CHN"), (1816670, 39.9042, 116.4074, "city")),
    ("petr2:TEST_11", ("USA", "CHE"), (2657896, 47.3769, 8.5417, "city")),  # Zurich
    ("extraction:1f765c487806", ("GBR", "USA"), (5128581, 40.7128, -74.0060, "city")),  # New York
    ("seed:Brussels", (None, "RUS"), (2800866, 50.8503, 4.3517, "city")),
    # petr2:TEST_8 ("... the MH17 crash in east Ukraine") was here: its MYS -> UKR event was a
    # wrong coding (a crash names no actor), which the coder no longer makes (#21).
    ("petr2:TEST_4", ("ISR", "PSE"), (6254930, 31.9, 35.2, "country")),  # the Gaza Strip
    ("extraction:833caf3bdba5", ("ISR", "PSE"), (6254930, 31.9, 35.2, "country")),  # West Bank
]


@pytest.fixture(scope="module")
def located_events(eval_dir: Path) -> dict[str, list[dict[str, Any]]]:
    coder = default_coder(ALL_ROOTS)
    found: dict[str, list[dict[str, Any]]] = {}
    for name, _, _ in REAL_PLACES:
        if name in found:
            continue
        kind, ref = name.split(":")
        if kind == "petr2":
            articles = [_petr2(eval_dir, ref)]
        elif kind == "extraction":
            articles = [_extraction(eval_dir, ref)]
        else:
            articles = seed_article_mappings()
        found[name] = [e for e in code_articles(articles, coder=coder) if e["location"]]
    return found


@pytest.mark.parametrize(("name", "pair", "expected"), REAL_PLACES)
def test_events_coded_from_real_text_carry_the_place_coordinates(
    located_events: dict[str, list[dict[str, Any]]],
    name: str,
    pair: tuple[str | None, str],
    expected: tuple[int, float, float, str],
) -> None:
    events = [
        e
        for e in located_events[name]
        if (e["source"]["country"], e["target"]["country"]) == pair
        and e["location"].get("geonames_id") == expected[0]
    ]
    assert events, [(e["source"]["country"], e["location"]) for e in located_events[name]]
    location = events[0]["location"]
    geonames_id, latitude, longitude, precision = expected
    assert location["precision"] == precision
    assert km_between(location["latitude"], location["longitude"], latitude, longitude) < 25
    schemas.validate(schemas.DIPLOMATIC_EVENT, events[0])
