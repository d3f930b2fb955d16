"""The PLOVER GSR scoring of bench-coder-quality: the CAMEO -> PLOVER table as the GSR names it."""

from __future__ import annotations

from bench.coder_quality import load_cameo_to_plover, plover_actor, plover_category, plover_gold


def test_cameo_codes_map_to_the_category_names_the_plover_gsr_uses() -> None:
    table = load_cameo_to_plover()
    assert plover_category(table, "036") == "AGREE"
    assert plover_category(table, "0841") == "RETREAT"  # root 08 splits: 084-087 RETREAT
    assert plover_category(table, "081") == "CONCEDE"
    assert plover_category(table, "112") == "DISAPPROVE"  # the 2021 table's ACCUSE
    assert plover_category(table, "091") == "INVESTIGATE"
    assert plover_category(table, "100") == "DEMAND"  # the 2021 table's REQUEST
    assert plover_category(table, "193") == "FIGHT"
    assert plover_category(table, "192") == "COERCE"
    assert plover_category(table, "186") == "ASSAULT"
    assert plover_category(table, "020") is None  # appeals have no PLOVER category


def test_plover_gold_pairs_compound_actors_and_marks_a_missing_target() -> None:
    record = {
        "expected": [
            {"source_actor": ["HUN", "ROU"], "target_actor": [], "plover_event": "AGREE"},
            {"source_actor": ["JAP"], "target_actor": ["IGO"], "plover_event": "AID"},
        ]
    }
    assert plover_gold(record) == {
        ("HUN", "---", "AGREE"),
        ("ROU", "---", "AGREE"),
        ("JPN", "IGO", "AID"),
    }
    assert plover_actor(None, "IGO") == "IGO" and plover_actor(None, "GOV") == "---"


def test_a_joint_act_may_be_read_as_each_pair_of_its_sources() -> None:
    record = {
        "expected": [{"source_actor": ["JOR", "GBR"], "target_actor": [], "plover_event": "AGREE"}]
    }
    assert plover_gold(record) == {("JOR", "---", "AGREE"), ("GBR", "---", "AGREE")}
    assert plover_gold(record, joint_as_pairs=True) == {
        ("JOR", "GBR", "AGREE"),
        ("GBR", "JOR", "AGREE"),
    }
