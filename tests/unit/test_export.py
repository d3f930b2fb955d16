"""``wirewatch export`` offline: GDELT 2.0 rows, PLOVER records, the compacted view of a JSONL.

The expected column names are typed here from the GDELT 2.0 Event Database Codebook (V2.0,
2015-02-19), independently of wirewatch_tools/export/gdelt.py, so a wrong or missing column fails.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wirewatch_tools.cli import main
from wirewatch_tools.export.gdelt import COLUMNS, gdelt_row, write_parquet, write_tsv
from wirewatch_tools.export.plover import plover_record
from wirewatch_tools.export.view import ExportInputError, read_jsonl_view

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE: dict[str, Any] = json.loads(
    (ROOT / "schemas" / "examples" / "diplomatic_event.v1.json").read_text(encoding="utf-8")
)
DEAD_LETTER = (ROOT / "schemas" / "examples" / "dead_letter.v1.json").read_text(encoding="utf-8")

GDELT_2_COLUMNS = """GLOBALEVENTID SQLDATE MonthYear Year FractionDate
Actor1Code Actor1Name Actor1CountryCode Actor1KnownGroupCode Actor1EthnicCode Actor1Religion1Code
Actor1Religion2Code Actor1Type1Code Actor1Type2Code Actor1Type3Code
Actor2Code Actor2Name Actor2CountryCode Actor2KnownGroupCode Actor2EthnicCode Actor2Religion1Code
Actor2Religion2Code Actor2Type1Code Actor2Type2Code Actor2Type3Code
IsRootEvent EventCode EventBaseCode EventRootCode QuadClass GoldsteinScale NumMentions NumSources
NumArticles AvgTone
Actor1Geo_Type Actor1Geo_FullName Actor1Geo_CountryCode Actor1Geo_ADM1Code Actor1Geo_ADM2Code
Actor1Geo_Lat Actor1Geo_Long Actor1Geo_FeatureID
Actor2Geo_Type Actor2Geo_FullName Actor2Geo_CountryCode Actor2Geo_ADM1Code Actor2Geo_ADM2Code
Actor2Geo_Lat Actor2Geo_Long Actor2Geo_FeatureID
ActionGeo_Type ActionGeo_FullName ActionGeo_CountryCode ActionGeo_ADM1Code ActionGeo_ADM2Code
ActionGeo_Lat ActionGeo_Long ActionGeo_FeatureID
DATEADDED SOURCEURL""".split()


def event(event_id: str, **changes: Any) -> dict[str, Any]:
    value = copy.deepcopy(EXAMPLE)
    value["event_id"] = event_id
    value.update(changes)
    return value


def test_columns_are_gdelt_2_event_table_columns_in_order() -> None:
    assert len(GDELT_2_COLUMNS) == 61
    assert list(COLUMNS) == GDELT_2_COLUMNS


def test_gdelt_row_of_the_example_event() -> None:
    row = gdelt_row(EXAMPLE)
    assert row["GLOBALEVENTID"] == EXAMPLE["event_id"]
    assert (row["SQLDATE"], row["MonthYear"], row["Year"]) == (20250317, 202503, 2025)
    assert row["FractionDate"] == 2025.2055  # 17 March is day 76: 75/365 of the year gone
    assert (row["Actor1Code"], row["Actor1CountryCode"], row["Actor1Type1Code"]) == (
        "USAGOV",
        "USA",
        "GOV",
    )
    assert (row["Actor2Code"], row["Actor2Name"]) == ("RUSGOV", "Vladimir Putin")
    assert (row["EventCode"], row["EventBaseCode"], row["EventRootCode"]) == ("036", "036", "03")
    assert (row["QuadClass"], row["GoldsteinScale"]) == (1, 4.0)
    assert (row["NumMentions"], row["NumSources"], row["NumArticles"]) == (1, 1, 1)
    assert row["DATEADDED"] == 20250317090113
    assert row["SOURCEURL"] == "http://127.0.0.1:8008/articles/0.html"
    assert row["ActionGeo_FullName"] is None and row["IsRootEvent"] is None


def test_four_digit_codes_give_three_digit_base_and_two_digit_root() -> None:
    action = {**EXAMPLE["action"], "cameo_code": "0233"}
    row = gdelt_row(event("ab" * 16, action=action))
    assert (row["EventCode"], row["EventBaseCode"], row["EventRootCode"]) == ("0233", "023", "02")


def test_action_geo_country_is_the_fips_code_gdelt_uses() -> None:
    located = event("cd" * 16, location={"name": "Germany", "country": "DEU"})
    row = gdelt_row(located)
    assert (row["ActionGeo_FullName"], row["ActionGeo_CountryCode"]) == ("Germany", "GM")
    assert (
        gdelt_row(event("ef" * 16, location={"name": "Kyiv", "country": "UKR"}))[
            "ActionGeo_CountryCode"
        ]
        == "UP"
    )


def test_tsv_keeps_61_columns_when_a_name_holds_a_tab_or_newline() -> None:
    source = {**EXAMPLE["source"], "entity": "Donald\tJ.\nTrump"}
    out = io.StringIO()
    assert write_tsv([gdelt_row(EXAMPLE), gdelt_row(event("01" * 16, source=source))], out) == 2
    lines = out.getvalue().split("\n")
    assert lines[-1] == "" and len(lines) == 3
    assert [len(line.split("\t")) for line in lines[:2]] == [61, 61]
    assert lines[1].split("\t")[6] == "Donald J. Trump"


def test_tsv_and_parquet_load_with_gdelt_names_and_types(tmp_path: Path) -> None:
    rows = [gdelt_row(EXAMPLE)]
    tsv = tmp_path / "events.tsv"
    with tsv.open("w", encoding="utf-8") as out:
        write_tsv(rows, out)
    frame = pd.read_csv(tsv, sep="\t", header=None, names=GDELT_2_COLUMNS, dtype={"EventCode": str})
    assert frame.loc[0, "EventCode"] == "036"
    assert frame.loc[0, "SQLDATE"] == 20250317 and frame.loc[0, "NumArticles"] == 1
    parquet = tmp_path / "events.parquet"
    assert write_parquet(rows, parquet) == 1
    table = pq.read_table(parquet)
    assert table.column_names == GDELT_2_COLUMNS
    assert table.schema.field("SQLDATE").type == pa.int32()
    assert table.schema.field("GoldsteinScale").type == pa.float64()
    assert table.schema.field("EventCode").type == pa.string()
    assert table.schema.field("DATEADDED").type == pa.int64()
    assert table.column("GoldsteinScale").to_pylist() == [4.0]


def test_plover_record_of_the_example_event() -> None:
    record = plover_record(EXAMPLE)
    assert record["id"] == EXAMPLE["event_id"] and record["date"] == "2025-03-17"
    assert record["event"] == ["CONSULT"] and record["quad_code"] == 1
    assert record["source"] == [
        {"code": "USA", "sector": "GOV", "actor_text": "Trump", "identifier_text": "Donald Trump"}
    ]
    assert record["recipient"][0]["code"] == "RUS"
    assert record["cite_info"] == {
        "url": "http://127.0.0.1:8008/articles/0.html",
        "publication": "Seed Outlet A",
    }
    assert record["event_loc"] is None and record["mode"] is None


def test_jsonl_view_applies_tombstones_and_keeps_the_latest_value() -> None:
    first = event("aa" * 16, num_articles=1)
    later = event("aa" * 16, num_articles=3, num_sources=2)
    gone = event("bb" * 16)
    lines = [
        json.dumps({"key": first["event_id"], "value": first}),
        json.dumps(gone),
        json.dumps({"key": later["event_id"], "value": later}),
        json.dumps({"key": gone["event_id"], "value": None}),
        "null",
    ]
    view = read_jsonl_view(lines, name="events.jsonl")
    assert list(view.events) == ["aa" * 16]
    assert view.events["aa" * 16]["num_articles"] == 3
    assert (view.messages, view.tombstones, view.keyless_tombstones) == (5, 1, 1)


def test_jsonl_with_a_dead_letter_is_refused_by_name() -> None:
    with pytest.raises(ExportInputError) as raised:
        read_jsonl_view([json.dumps(EXAMPLE), json.dumps(json.loads(DEAD_LETTER))], name="x")
    assert str(raised.value) == "x:2 is a dead_letter.v1 message, not diplomatic_event.v1"


def test_export_command_filters_by_event_date_and_says_what_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    dates = ["2025-03-16", "2025-03-17", "2025-03-18"]
    lines = [json.dumps(event(f"{n:032x}", event_date=day)) for n, day in enumerate(dates)]
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["export", "--input", str(events), "--format", "plover"]
    assert main([*args, "--since", "2025-03-17", "--until", "2025-03-18T00:00:00Z"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["date"] for line in captured.out.splitlines()] == ["2025-03-17"]
    assert captured.err.startswith("exported 1 events to standard output (3 in the view")


def test_export_command_refuses_parquet_to_standard_output_and_a_non_event_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    letters = tmp_path / "letters.jsonl"
    letters.write_text(json.dumps(json.loads(DEAD_LETTER)) + "\n", encoding="utf-8")
    assert main(["export", "--input", str(letters), "--format", "parquet"]) == 2
    assert "--format parquet needs --output FILE" in capsys.readouterr().err
    assert main(["export", "--input", str(letters), "--format", "tsv"]) == 2
    assert capsys.readouterr().err == (
        f"wirewatch export: {letters}:1 is a dead_letter.v1 message, not diplomatic_event.v1\n"
    )


def test_geocoded_locations_fill_gdelt_geo_type_coordinates_and_feature_id() -> None:
    brussels = {
        "name": "Brussels",
        "country": "BEL",
        "geonames_id": 2800866,
        "latitude": 50.85045,
        "longitude": 4.34878,
        "feature_class": "P",
        "feature_code": "PPL",
        "precision": "city",
    }
    row = gdelt_row(event("12" * 16, location=brussels))
    assert (row["ActionGeo_Type"], row["ActionGeo_CountryCode"]) == (4, "BE")
    assert (row["ActionGeo_Lat"], row["ActionGeo_Long"]) == (50.85045, 4.34878)
    assert row["ActionGeo_FeatureID"] == "2800866"
    houston = {**brussels, "name": "Houston", "country": "USA", "geonames_id": 4699066}
    assert gdelt_row(event("34" * 16, location=houston))["ActionGeo_Type"] == 3
    ukraine = {**brussels, "name": "east Ukraine", "country": "UKR", "precision": "country"}
    country_row = gdelt_row(event("56" * 16, location=ukraine))
    assert (country_row["ActionGeo_Type"], country_row["ActionGeo_FeatureID"]) == (1, "UP")
    record = plover_record(event("78" * 16, location=brussels))
    assert record["event_loc"]["geonameid"] == 2800866
    assert (record["event_loc"]["country code"], record["event_loc"]["cc3"]) == ("BE", "BEL")
