"""`wirewatch run` prints how far the pipeline has got, from the services' own metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from services.common.metrics import ServiceMetrics
from wirewatch_tools.local.pipeline import progress_counts, progress_line, scrape


def metrics_page(service: str, fill: dict[str, dict[tuple[str, ...], int]]) -> str:
    """A service's metrics page as ``prometheus_client`` renders it, with the counts given."""
    registry = CollectorRegistry()
    shared = ServiceMetrics(service, registry=registry)
    shared.dead_letters.labels(topic="t", reason="r").inc(fill.get("dead_letters", {}).get((), 0))
    for name, values in fill.items():
        if name == "dead_letters":
            continue
        label_names = {"articles": ["outcome"], "events": ["cameo_root", "kind"]}.get(name, [])
        counter = Counter(f"wirewatch_{service}_{name}", name, label_names, registry=registry)
        for labels, value in values.items():
            (counter.labels(*labels) if labels else counter).inc(value)
    return generate_latest(registry).decode()


def test_counts_come_from_every_stage_and_dead_letters_are_summed() -> None:
    pages = [
        metrics_page("poller", {"entries_emitted": {(): 7}, "dead_letters": {(): 1}}),
        metrics_page("extractor", {"articles_emitted": {(): 5}, "dead_letters": {(): 1}}),
        metrics_page("dedup", {"articles": {("new_story",): 2, ("copy",): 3}}),
        metrics_page(
            "coder", {"events": {("04", "new"): 2, ("05", "new"): 1, ("04", "update"): 4}}
        ),
    ]
    counts = progress_counts(pages)
    assert counts["entries"] == 7 and counts["articles"] == 5 and counts["dead_letters"] == 2
    assert progress_line(counts) == (
        "progress: 7 feed entries, 5 articles extracted, 5 deduplicated (3 copy, 2 new_story), "
        "3 events (4 updates), 2 dead letters"
    )


def test_one_of_a_kind_is_singular() -> None:
    line = progress_line(
        progress_counts(
            [
                metrics_page("extractor", {"articles_emitted": {(): 1}, "dead_letters": {(): 1}}),
                metrics_page("coder", {"events": {("04", "new"): 1, ("04", "update"): 1}}),
            ]
        )
    )
    assert "1 article extracted" in line and "1 event (1 update)" in line
    assert line.endswith("1 dead letter")


def test_before_anything_arrives_the_line_says_zero_everywhere() -> None:
    assert progress_line(progress_counts([metrics_page("poller", {})])) == (
        "progress: 0 feed entries, 0 articles extracted, 0 deduplicated, 0 events, 0 dead letters"
    )


def test_a_service_that_does_not_answer_is_left_out() -> None:
    assert scrape(["http://127.0.0.1:9/metrics"]) == []
