"""The dedup core without a broker: decisions, idempotence, the window's bounds, records, CLI.

Texts are real news leads from ``shared/eval/neardup`` (np008: AFP story; np010: a verbatim
republication of it; np019: an unrelated Reuters story) and the bundled seed articles.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from services.cli import main as wirewatch
from services.dedup.engine import ArticleIn, Deduplicator
from services.dedup.index import Window, WindowEntry
from services.dedup.offline import load_seed_articles, run_offline
from services.dedup.records import article_event_time, restore_record, window_record
from services.dedup.similarity import extract_quotes, fingerprint, stable_hash

SEEDS = Path(__file__).resolve().parents[2] / "services" / "demo" / "seeds"
HOUR = 3600.0


@pytest.fixture(scope="module")
def dev(eval_dir: Path) -> dict[str, dict[str, Any]]:
    path = eval_dir / "neardup" / "news_pages_dev.jsonl"
    return {row["id"]: row for row in map(json.loads, path.open(encoding="utf-8"))}


def article(
    row: dict[str, Any], at: float | None = 0.0, article_id: str | None = None
) -> ArticleIn:
    return ArticleIn(article_id or row["id"], row.get("title") or "", row["text"], at)


def test_verbatim_republication_is_a_copy_of_the_original_in_its_story(
    dev: dict[str, dict[str, Any]],
) -> None:
    engine = Deduplicator()
    first, _ = engine.decide(article(dev["np008"]))
    second, _ = engine.decide(article(dev["np010"], HOUR))
    assert first.outcome == "new_story" and first.is_first_in_story
    assert second.outcome == "copy"
    assert second.copy_of == "np008" and second.story_id == "np008"
    assert not second.is_first_in_story
    assert "shared_text" in second.signals


def test_unrelated_story_starts_a_new_story(dev: dict[str, dict[str, Any]]) -> None:
    engine = Deduplicator()
    engine.decide(article(dev["np008"]))
    other, _ = engine.decide(article(dev["np019"], HOUR))
    assert other.outcome == "new_story" and other.story_id == "np019" and other.copy_of is None


def test_copy_of_a_copy_points_to_the_earliest_article(dev: dict[str, dict[str, Any]]) -> None:
    engine = Deduplicator()
    engine.decide(article(dev["np008"]))
    engine.decide(article(dev["np010"], HOUR))
    third, _ = engine.decide(article(dev["np010"], 2 * HOUR, article_id="np010-again"))
    assert third.copy_of == "np008"


def test_reprocessed_article_gets_the_same_decision_and_no_new_window_entry(
    dev: dict[str, dict[str, Any]],
) -> None:
    engine = Deduplicator()
    engine.decide(article(dev["np008"]))
    decision, entry = engine.decide(article(dev["np010"], HOUR))
    again, again_entry = engine.decide(article(dev["np010"], HOUR))
    assert entry is not None and again_entry is None
    assert again == decision
    assert len(engine.window) == 2


def test_same_input_in_a_fresh_engine_gives_identical_decisions(
    dev: dict[str, dict[str, Any]],
) -> None:
    ids = ["np008", "np012", "np009", "np013", "np016", "np017", "np019", "np020"]
    runs = []
    for _ in range(2):
        engine = Deduplicator()
        runs.append([engine.decide(article(dev[i], n * HOUR))[0] for n, i in enumerate(ids)])
    assert runs[0] == runs[1]


def test_article_older_than_the_window_is_evicted_and_no_longer_matched(
    dev: dict[str, dict[str, Any]],
) -> None:
    engine = Deduplicator(window_seconds=24 * HOUR)
    engine.decide(article(dev["np008"], 0.0))
    engine.decide(article(dev["np019"], 30 * HOUR))
    assert engine.evict() == ["np008"]
    late_copy, _ = engine.decide(article(dev["np010"], 31 * HOUR))
    assert "np008" not in engine.window
    assert late_copy.outcome == "new_story"


def test_copy_outside_the_window_span_is_not_matched_even_before_eviction(
    dev: dict[str, dict[str, Any]],
) -> None:
    engine = Deduplicator(window_seconds=24 * HOUR)
    engine.decide(article(dev["np008"], 100 * HOUR))
    earlier, _ = engine.decide(article(dev["np010"], 10 * HOUR))
    assert earlier.outcome == "new_story"


def test_seed_articles_are_not_merged_into_unrelated_stories(
    dev: dict[str, dict[str, Any]],
) -> None:
    engine = Deduplicator()
    for row in dev.values():
        engine.decide(article(row))
    decisions = [engine.decide(seed)[0] for seed in load_seed_articles(SEEDS)]
    assert all(d.story_id not in dev for d in decisions)
    assert all(d.copy_of is None for d in decisions)


def test_index_keeps_only_the_latest_postings_and_bounds_candidates(
    dev: dict[str, dict[str, Any]],
) -> None:
    window = Window(span_seconds=1e9, posting_limit=5, candidate_limit=3)
    fp = fingerprint(dev["np008"]["title"], dev["np008"]["text"])
    for n in range(20):
        window.add(WindowEntry(f"a{n:02d}", float(n), fp, f"a{n:02d}", f"a{n:02d}"))
    assert max(len(p) for p in window.postings.values()) == 5
    found = window.candidates(fp, event_time=20.0)
    assert [e.article_id for e in found] == ["a15", "a16", "a17"]


def test_frequency_sketch_counts_additions_and_removals(dev: dict[str, dict[str, Any]]) -> None:
    window = Window(span_seconds=10.0)
    fp = fingerprint("", dev["np008"]["text"])
    window.add(WindowEntry("old", 0.0, fp, "old", "old"))
    window.add(WindowEntry("new", 5.0, fp, "new", "new"))
    assert set(window.frequencies.counts(fp.shingles).tolist()) == {2}
    window.add(WindowEntry("newest", 20.0, fingerprint("", "Unrelated words here."), "x", "x"))
    assert window.evict_expired() == ["old", "new"]
    assert set(window.frequencies.counts(fp.shingles).tolist()) == {0}
    assert not any("old" in p or "new" in p for p in window.postings.values())


def test_hashes_are_stable_across_processes() -> None:
    assert stable_hash("30-day ceasefire") == zlib.crc32(b"30-day ceasefire")


def test_quotes_are_found_in_curly_straight_and_guillemet_marks() -> None:
    text = 'He said “we want peace now” and "the ball is in their court" and «vamos ver agora».'
    assert extract_quotes(text) == [
        "we want peace now",
        "the ball is in their court",
        "vamos ver agora",
    ]


def test_window_record_round_trips_fingerprint_and_decision(dev: dict[str, dict[str, Any]]) -> None:
    engine = Deduplicator()
    engine.decide(article(dev["np008"]))
    decision, entry = engine.decide(article(dev["np010"], HOUR))
    assert entry is not None
    record = json.loads(json.dumps(window_record(entry, decision, "2025-03-11T10:00:00Z")))
    restored, restored_decision, decided_at = restore_record("np010", record)
    assert restored == entry and restored_decision == decision
    assert decided_at == "2025-03-11T10:00:00Z"


def test_implausible_future_publication_date_falls_back_to_first_seen() -> None:
    message = {
        "published": "2031-01-01T00:00:00Z",
        "first_seen": "2025-03-11T10:00:00Z",
        "fetched_at": "2025-03-11T10:00:05Z",
    }
    assert article_event_time(message) == pytest.approx(1741687200.0)
    message["published"] = "2025-03-11"
    assert article_event_time(message) == pytest.approx(1741651200.0)


def test_offline_form_answers_every_line_in_input_order(dev: dict[str, dict[str, Any]]) -> None:
    lines = [
        json.dumps({"id": "b", "url": "u1", "title": "", "text": dev["np008"]["text"]}),
        "{broken",
        json.dumps({"id": "a", "url": "u2", "title": "", "text": dev["np010"]["text"]}),
        json.dumps({"id": "c", "url": "u3", "title": "x"}),
    ]
    results = list(run_offline(lines))
    assert [r["id"] for r in results] == ["b", None, "a", "c"]
    assert results[2] == {"id": "a", "story_id": "b", "copy_of": "b"}
    assert "error" in results[1] and "error" in results[3]


def test_wirewatch_dedup_file_prints_one_json_line_per_article(
    dev: dict[str, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "articles.jsonl"
    rows = [dev["np008"], dev["np019"], dev["np010"]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert wirewatch(["dedup", str(path)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out == [
        {"id": "np008", "story_id": "np008", "copy_of": None},
        {"id": "np019", "story_id": "np019", "copy_of": None},
        {"id": "np010", "story_id": "np008", "copy_of": "np008"},
    ]
