"""The dedup core without a broker: decisions, idempotence, the window's bounds, records, CLI.

Texts are real news leads from ``shared/eval/neardup`` (np008: AFP story; np010: a verbatim
republication of it; np019: an unrelated Reuters story;
np049: an independent report of the same happening as np008) and the bundled seed articles.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from services.dedup.engine import ArticleIn, Deduplicator, parse_time
from services.dedup.index import Window, WindowEntry
from services.dedup.offline import load_seed_articles, run_offline
from services.dedup.profile import make_profile, prose, rarity
from services.dedup.records import article_event_time, restore_record, window_record
from services.dedup.similarity import extract_quotes, fingerprint, stable_hash
from services.dedup.stories import StoryModel
from wirewatch_tools.cli import main as wirewatch

SEEDS = Path(__file__).resolve().parents[2] / "wirewatch_tools" / "demo" / "seeds"
HOUR = 3600.0


@pytest.fixture(scope="module")
def dev(eval_dir: Path) -> dict[str, dict[str, Any]]:
    path = eval_dir / "neardup" / "news_pages_dev.jsonl"
    return {row["id"]: row for row in map(json.loads, path.open(encoding="utf-8"))}


@pytest.fixture(scope="module")
def published(eval_dir: Path) -> dict[str, float]:
    """Each dev page's labelled publication time (the happening's day and hour)."""
    path = eval_dir / "neardup" / "news_pages_dev_stories.jsonl"
    rows = map(json.loads, path.open(encoding="utf-8"))
    return {row["id"]: parse_time(row["published"]) or 0.0 for row in rows}


def profiled(article_id: str, at: float, fp_text: str = "x y z") -> WindowEntry:
    return WindowEntry(
        article_id, at, fingerprint("", fp_text), article_id, article_id, make_profile("", fp_text)
    )


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


def test_the_five_seed_articles_are_one_story() -> None:
    engine = Deduplicator()
    decisions = [engine.decide(seed)[0] for seed in load_seed_articles(SEEDS)]
    assert len({d.story_id for d in decisions}) == 1
    assert [d.is_first_in_story for d in decisions] == [True, False, False, False, False]
    assert all(d.copy_of is None for d in decisions)  # five outlets' own texts, not copies


def test_seed_articles_in_one_window_with_the_dev_pages_stay_one_story_of_their_own(
    dev: dict[str, dict[str, Any]], published: dict[str, float]
) -> None:
    """At their real dates (the seeds six days after the Jeddah talks, the demo feed's date),
    in one week-long window."""
    engine = Deduplicator(window_seconds=7 * 24 * HOUR)
    for page_id in sorted(dev, key=lambda i: published[i]):
        engine.decide(article(dev[page_id], published[page_id]))
    seeds_at = parse_time("2025-03-17T12:00:00Z")
    seeds = [replace(seed, event_time=seeds_at) for seed in load_seed_articles(SEEDS)]
    decisions = [engine.decide(seed)[0] for seed in seeds]
    assert len({d.story_id for d in decisions}) == 1
    assert all(d.story_id not in dev for d in decisions)


def test_independent_report_joins_the_story_of_its_happening(
    dev: dict[str, dict[str, Any]], published: dict[str, float]
) -> None:
    engine = Deduplicator()
    first, _ = engine.decide(article(dev["np008"], published["np008"]))
    other, _ = engine.decide(article(dev["np049"], published["np049"]))
    assert other.outcome == "same_story" and other.story_id == first.story_id
    assert other.copy_of is None and not other.is_first_in_story


def test_another_happening_of_the_same_day_and_actors_is_another_story(
    dev: dict[str, dict[str, Any]], published: dict[str, float]
) -> None:
    """The India-Pakistan ceasefire (np019) and Pakistan's denial of a nuclear-command meeting
    (np029), both on 2025-05-10."""
    engine = Deduplicator()
    ceasefire, _ = engine.decide(article(dev["np019"], published["np019"]))
    denial, _ = engine.decide(article(dev["np029"], published["np029"]))
    assert denial.outcome == "new_story" and denial.story_id != ceasefire.story_id


def test_the_same_report_years_apart_is_not_the_same_story(dev: dict[str, dict[str, Any]]) -> None:
    engine = Deduplicator()
    engine.decide(article(dev["np049"], 0.0))
    later, _ = engine.decide(article(dev["np050"], 400 * 24 * HOUR))
    assert later.outcome == "new_story"


def test_story_decisions_do_not_depend_on_how_the_input_was_partitioned(
    dev: dict[str, dict[str, Any]], published: dict[str, float]
) -> None:
    """Four extractor partitions interleaved two ways reach the window in time order either way
    when each partition is in time order; the window answers from the articles alone."""
    ordered = sorted(dev, key=lambda i: (published[i], i))
    runs = []
    for _ in range(2):
        engine = Deduplicator()
        runs.append({i: engine.decide(article(dev[i], published[i]))[0] for i in ordered})
        engine_restored = Deduplicator()
        for page_id in ordered:
            entry_decision = runs[-1][page_id]
            entry = engine.window.get(page_id)
            assert entry is not None
            record = json.loads(json.dumps(window_record(entry, entry_decision, "t")))
            restored, decision, _ = restore_record(page_id, record)
            engine_restored.restore(restored, decision)
        late = article(dev["np012"], published["np012"] + HOUR, article_id="np012-late")
        assert engine_restored.decide(late)[0] == engine.decide(late)[0]
    assert runs[0] == runs[1]


def test_prose_keeps_sentences_and_drops_navigation_and_links() -> None:
    page = (
        "Click here for more\nShare this\n"
        "Police said four people were wounded in the shooting late on Sunday night.\n"
        "Read more: https://example.com/a-story-about-this-shooting-and-more-words-here."
    )
    assert (
        prose(page) == "Police said four people were wounded in the shooting late on Sunday night."
    )
    assert prose("short line only") == "short line only"


def test_rare_words_weigh_more_than_common_ones() -> None:
    assert rarity("the") < rarity("ceasefire") < rarity("zelenskyy")
    assert rarity("an-unknown-word-xyz") == max(rarity("an-unknown-word-xyz"), rarity("putin"))


def test_bundled_story_model_is_valid_and_refuses_wrong_shapes() -> None:
    model = StoryModel.bundled()
    assert 0 < model.threshold < 1 and model.horizon_hours > 24
    with pytest.raises(ValueError, match="weights"):
        StoryModel.from_mapping(
            {"rank_weights": [0.0], "decision_weights": [0.0], "threshold": 0.5, "horizon_hours": 1}
        )


def test_index_keeps_only_the_latest_postings_and_bounds_candidates(
    dev: dict[str, dict[str, Any]],
) -> None:
    window = Window(span_seconds=1e9, posting_limit=5, candidate_limit=3)
    fp = fingerprint(dev["np008"]["title"], dev["np008"]["text"])
    profile = make_profile(dev["np008"]["title"], dev["np008"]["text"])
    for n in range(20):
        window.add(WindowEntry(f"a{n:02d}", float(n), fp, f"a{n:02d}", f"a{n:02d}", profile))
    assert max(len(p) for p in window.postings.values()) == 5
    found = window.candidates(fp, event_time=20.0)
    assert [e.article_id for e in found] == ["a15", "a16", "a17"]


def test_frequency_sketch_counts_additions_and_removals(dev: dict[str, dict[str, Any]]) -> None:
    window = Window(span_seconds=10.0)
    fp = fingerprint("", dev["np008"]["text"])
    profile = make_profile("", dev["np008"]["text"])
    window.add(WindowEntry("old", 0.0, fp, "old", "old", profile))
    window.add(WindowEntry("new", 5.0, fp, "old", "new", profile))
    assert set(window.frequencies.counts(fp.shingles).tolist()) == {2}
    assert window.stories == {"old": ["old", "new"]}
    window.add(profiled("newest", 20.0, "Unrelated words here."))
    assert window.evict_expired() == ["old", "new"]
    assert set(window.frequencies.counts(fp.shingles).tolist()) == {0}
    assert not any("old" in p or "new" in p for p in window.postings.values())
    assert not any("old" in p or "new" in p for p in window.story_postings.values())
    assert window.stories == {"newest": ["newest"]}


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
