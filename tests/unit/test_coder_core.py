"""The coder's pure core: dates, sentence coding, and aggregation of the five seed articles."""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import spacy
from threadpoolctl import threadpool_info

from services.coder.aggregate import ArticleRef, merge_mention
from services.coder.app import decode_mention
from services.coder.coding import (
    ALL_ROOTS,
    MODEL,
    Coder,
    Mention,
    default_coder,
    load_pipeline,
    mention_to_dict,
)
from services.coder.core import ArticleInputError, article_from_mapping, code_articles
from services.coder.dates import resolve_date
from services.coder.memo import MemoAttributeRuler, MemoLemmatize
from services.common import schemas
from services.common.kafka import Failure, encode_json

SEEDS = Path(__file__).resolve().parents[2] / "wirewatch_tools" / "demo" / "seeds"
MONDAY = date(2025, 3, 17)


def seed_articles() -> list[dict[str, str]]:
    return [
        {
            "id": path.stem.split("_")[1],
            "url": f"http://127.0.0.1:8008/articles/{n}.html",
            "title": "",
            "text": path.read_text(encoding="utf-8"),
            "source": f"outlet-{n}",
            "published": "2025-03-17",
        }
        for n, path in enumerate(sorted(SEEDS.glob("0*.txt")))
    ]


def test_weekday_resolves_forward_for_plans_and_backward_for_past_actions() -> None:
    assert resolve_date(["on", "Tuesday"], MONDAY, forward=True) == date(2025, 3, 18)
    assert resolve_date(["on", "Sunday"], MONDAY, forward=False) == date(2025, 3, 16)
    assert resolve_date(["last", "week"], MONDAY, forward=False) == date(2025, 3, 10)
    assert resolve_date(["tomorrow"], MONDAY, forward=False) == date(2025, 3, 18)
    assert resolve_date(["June", "28", ",", "2019"], MONDAY, forward=False) == date(2019, 6, 28)


def test_announced_call_is_coded_as_intent_to_meet_with_planned_date() -> None:
    coder = default_coder()
    mentions = coder.code_sentence(
        "US President Donald Trump said early Monday that he will speak with Russian "
        "President Vladimir Putin on Tuesday.",
        MONDAY,
    )
    assert [(m.source.cameo_code, m.target.cameo_code, m.action.cameo_code) for m in mentions] == [
        ("USAGOV", "RUSGOV", "036")
    ]
    assert mentions[0].planned_date == date(2025, 3, 18)
    assert mentions[0].event_date == MONDAY


def test_compound_subject_gives_one_event_per_pair() -> None:
    coder = Coder(load_pipeline(), scope_roots=ALL_ROOTS)
    mentions = coder.code_sentence("Britain and France condemned Russia on Monday.", MONDAY)
    pairs = {(m.source.country, m.target.country, m.action.root) for m in mentions}
    assert pairs == {("GBR", "RUS", "11"), ("FRA", "RUS", "11")}


def test_five_seed_articles_yield_one_call_event_with_five_articles_and_sources() -> None:
    events = code_articles(seed_articles(), coder_version="test")
    calls = [
        e
        for e in events
        if e["source"]["country"] == "USA"
        and e["target"]["country"] == "RUS"
        and e["action"]["cameo_code"][:2] in ("03", "04")
        and e["planned_date"] == "2025-03-18"
    ]
    assert len(calls) == 1
    call = calls[0]
    assert call["source"]["role"] == "GOV" and call["target"]["role"] == "GOV"
    assert call["action"]["cameo_code"] == "036"
    assert call["num_articles"] == 5 and call["num_sources"] == 5
    assert {e["article_id"] for e in call["evidence"]} == {a["id"] for a in seed_articles()}
    for event in events:
        schemas.validate(schemas.DIPLOMATIC_EVENT, event)


def test_every_seed_event_is_between_actors_with_a_country_or_an_organisation() -> None:
    """No vehicle, document, proposal or accident as an actor, and no actor without a code."""
    coder = default_coder()
    things = coder.actors.owned_nouns | coder.actors.authorless_nouns
    events = code_articles(seed_articles(), coder_version="test")
    assert events
    for event in events:
        for actor in (event["source"], event["target"]):
            assert actor["country"] or actor["role"] == "IGO" or actor["entity"], actor
            assert actor["name"].split()[-1].lower() not in things, (actor, event["action"])
            assert actor["name"] != "Air Force One"
            if actor["role"] in coder.actors.stationed_roles:
                # "troops in Ukraine" are not Ukraine's: a force's country is not where it is.
                assert " in " not in f" {actor['name']} ", (actor, event["action"])


def test_a_thing_stands_for_its_owner_and_an_accident_for_nobody() -> None:
    coder = Coder(load_pipeline(), scope_roots=ALL_ROOTS)
    rejected = coder.code_sentence("Ukraine rejected the Russian proposal on Monday.", MONDAY)
    assert [(m.source.country, m.target.country, m.target.name) for m in rejected] == [
        ("UKR", "RUS", "Russian")
    ]
    crash = coder.code_sentence(
        "Investigators identified victims killed by the Malaysia Airlines flight crash in Ukraine.",
        MONDAY,
    )
    assert not any(m.source.country == "MYS" for m in crash)


def test_a_hosted_visit_is_also_the_visitors_visit() -> None:
    coder = Coder(load_pipeline(), scope_roots=ALL_ROOTS)
    mentions = coder.code_sentence("Putin received ministers from the Indian government.", MONDAY)
    assert {(m.source.country, m.target.country, m.action.cameo_code) for m in mentions} == {
        ("RUS", "IND", "043"),
        ("IND", "RUS", "042"),
    }


def test_same_article_twice_does_not_raise_counts_and_replay_keeps_ids() -> None:
    articles = seed_articles()
    once = code_articles(articles, coder_version="test")
    twice = code_articles(articles + articles, coder_version="test")
    assert [(e["event_id"], e["num_articles"]) for e in once] == [
        (e["event_id"], e["num_articles"]) for e in twice
    ]


def test_merging_a_mention_from_an_already_counted_article_changes_nothing() -> None:
    coder = default_coder()
    mention = coder.code_sentence("Trump will meet Putin on Tuesday.", MONDAY)[0]
    ref = ArticleRef("a1", "http://127.0.0.1/a1", "outlet", "2025-03-17T08:00:00.000Z")
    bucket, first = merge_mention([], mention, ref, coder_version="test")
    again, second = merge_mention(bucket, mention, ref, coder_version="test")
    assert first is not None and first.kind == "new"
    assert second is None and again == bucket


def _meeting_mentions_days_apart(*offsets: int) -> list[tuple[Mention, ArticleRef]]:
    """One "Trump met Putin" mention per offset (days after MONDAY), each its own article."""
    coder = default_coder()
    found: list[tuple[Mention, ArticleRef]] = []
    for offset in offsets:
        day = date.fromordinal(MONDAY.toordinal() + offset)
        mention = coder.code_sentence("Trump met Putin.", day)[0]
        ref = ArticleRef(
            f"a{offset}", f"http://127.0.0.1/a{offset}", f"o{offset}", "2025-03-17T08:00:00.000Z"
        )
        found.append((mention, ref))
    return found


def _view(
    mentions: list[tuple[Mention, ArticleRef]],
) -> tuple[dict[str, tuple[str, ...]], list[dict[str, Any]]]:
    bucket: list[dict[str, Any]] = []
    view: dict[str, tuple[str, ...]] = {}
    for mention, ref in mentions:
        bucket, update = merge_mention(bucket, mention, ref, coder_version="test")
        if update is not None:
            for replaced in update.replaces:
                view.pop(replaced, None)
            view[update.event["event_id"]] = tuple(sorted(update.event["article_ids"]))
    return view, bucket


def test_events_do_not_depend_on_the_order_articles_arrive_in() -> None:
    """Days 0 and 6 are two events until day 3 bridges them; every order gives the same view."""
    mentions = _meeting_mentions_days_apart(0, 3, 6)
    views = [_view(list(order))[0] for order in itertools.permutations(mentions)]
    assert all(view == views[0] for view in views)
    assert list(views[0].values()) == [("a0", "a3", "a6")]
    apart = _view([mentions[0], mentions[2]])[0]
    assert sorted(apart.values()) == [("a0",), ("a6",)]


def test_a_redelivered_article_is_not_counted_again_after_its_event_moved() -> None:
    """Day 3 first, then day 0 moves the event's anchor: redelivering day 3 changes nothing."""
    mentions = _meeting_mentions_days_apart(3, 0, 6)
    view, bucket = _view(mentions)
    for mention, ref in mentions:
        again, update = merge_mention(bucket, mention, ref, coder_version="test")
        assert update is None and again == bucket
    assert list(view.values()) == [("a0", "a3", "a6")]


def test_joining_two_events_names_both_old_ids_for_deletion() -> None:
    day0, day3, day6 = _meeting_mentions_days_apart(0, 3, 6)
    view, bucket = _view([day0, day6])
    _, update = merge_mention(bucket, day3[0], day3[1], coder_version="test")
    assert update is not None and update.event["num_articles"] == 3
    assert set(view) - {update.event["event_id"]} == set(update.replaces)
    schemas.validate(schemas.DIPLOMATIC_EVENT, update.event)


def test_article_without_text_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ArticleInputError, match="non-empty 'text'"):
        article_from_mapping({"id": "x", "text": "  "})


def test_kallas_criticism_and_russian_demands_aggregate_across_seed_articles() -> None:
    events = code_articles(seed_articles(), coder_version="test")
    criticism = [
        e
        for e in events
        if e["source"]["cameo_code"] == "IGOEUREEC"
        and e["target"]["country"] == "RUS"
        and e["action"]["cameo_code"][:2] == "11"
    ]
    assert len(criticism) == 1 and criticism[0]["num_articles"] >= 3
    assert criticism[0]["source"]["entity"] == "Kaja Kallas"
    demands = [
        e
        for e in events
        if e["source"]["country"] == "RUS"
        and e["target"]["country"] == "UKR"
        and e["action"]["cameo_code"][:2] in ("02", "10")
    ]
    assert len(demands) == 1 and demands[0]["num_articles"] >= 2


def test_reported_negated_will_of_another_actor_codes_as_criticism() -> None:
    coder = default_coder()
    mentions = coder.code_sentence(
        "Kaja Kallas said on Monday that Moscow does not want peace.", MONDAY
    )
    assert [(m.source.cameo_code, m.target.country, m.action.cameo_code) for m in mentions] == [
        ("IGOEUREEC", "RUS", "111")
    ]


def test_coordinated_country_modifiers_give_one_actor_each() -> None:
    coder = Coder(load_pipeline(), scope_roots=ALL_ROOTS)
    mentions = coder.code_sentence("US and British troops attacked Iraq on Monday.", MONDAY)
    assert {(m.source.cameo_code, m.target.country) for m in mentions} == {
        ("USAMIL", "IRQ"),
        ("GBRMIL", "IRQ"),
    }


def test_event_ids_do_not_depend_on_the_order_articles_arrive_in() -> None:
    articles = seed_articles()
    forward = {e["event_id"] for e in code_articles(articles, coder_version="test")}
    backward = {e["event_id"] for e in code_articles(articles[::-1], coder_version="test")}
    assert forward == backward


def test_a_mention_message_that_is_not_one_becomes_a_dead_letter() -> None:
    mention = default_coder().code_sentence("Trump will meet Putin on Tuesday.", MONDAY)[0]
    ref: dict[str, Any] = {
        "article_id": "a1",
        "url": None,
        "source": None,
        "first_seen": "2025-03-17T08:00:00Z",
    }
    good = encode_json({"mention": mention_to_dict(mention), "article": ref})
    decoded = decode_mention(good)
    assert not isinstance(decoded, Failure) and decoded[0] == mention
    assert decoded[1] == ArticleRef(**ref)
    for raw, reason in [
        (b"\xff{", "invalid_json"),
        (b'{"hello": "world"}', "invalid_mention"),
        (b"[1, 2]", "invalid_mention"),
        (encode_json({"mention": {"source": {}}, "article": ref}), "invalid_mention"),
    ]:
        letter = decode_mention(raw)
        assert isinstance(letter, Failure) and letter.reason == reason, raw


def test_a_paragraph_is_skipped_only_when_no_actor_form_can_be_in_it() -> None:
    actors = default_coder().actors
    assert actors.may_name_an_actor("Officials in the Kremlin declined to comment.")
    assert actors.may_name_an_actor("He met the E.U. envoy in Brussels on Monday.")
    assert actors.may_name_an_actor("TUNISIAN RIOTERS clashed with police")  # any case
    assert not actors.may_name_an_actor("The weather stayed mild and the markets were quiet.")


def test_every_actor_form_contains_its_key_word() -> None:
    """The skip is safe only if every form, however written, holds its key word."""
    actors = default_coder().actors
    for form in actors.forms:
        assert actors.may_name_an_actor(f"... {form} ..."), form
        assert actors.may_name_an_actor(f"... {form.upper()}'s ..."), form


def test_sentences_with_and_without_their_entities_code_alike() -> None:
    """Named entities are added only to sentences that hold a mention; coding a text must give
    what the whole pipeline on every sentence gives."""
    coder = default_coder()
    for article in seed_articles():
        text = article["text"]
        whole: list[object] = []
        last_actor = None
        for doc in coder.nlp.pipe(coder.candidate_sentences(text, MONDAY)):
            found, last_actor = coder._code_doc(doc, MONDAY, last_actor)
            whole.extend(found)
        assert coder.code_text(text, MONDAY) == whole
        assert whole


def test_texts_coded_together_code_as_they_do_one_by_one() -> None:
    coder = default_coder()
    texts = [(article["text"], MONDAY) for article in seed_articles()]
    texts.insert(2, ("Nothing here names anyone.", MONDAY))  # no candidate sentence at all
    texts.append((texts[0][0], date(2025, 3, 20)))  # dates resolve against each text's own day
    alone = [coder.code_text(text, published) for text, published in texts]
    assert coder.code_texts(texts) == alone
    assert alone[2] == [] and all(alone[i] for i in (0, 1, 3, 4, 5))
    assert alone[-1] != alone[0]


def test_remembered_lemmas_are_the_lemmatizers_own_and_the_memo_is_bounded() -> None:
    nlp = load_pipeline()
    # remember_rule_components replaced the lemmatizer's lemmatize with a MemoLemmatize.
    lemmatizer: Any = nlp.get_pipe("lemmatizer")
    memo = lemmatizer.lemmatize
    assert isinstance(memo, MemoLemmatize)
    text = (
        "The ministers were meeting in Jeddah; the talks went well and Ukraine accepted the "
        "proposals the United States had tabled, officials said."
    )
    remembered = [t.lemma_ for t in nlp(text)]
    fresh = MemoLemmatize(memo.lemmatize, limit=3)
    with nlp.select_pipes(disable=["lemmatizer"]):
        doc = nlp(text)
    # The lemmatizer fills in what the attribute ruler left unset ("were" is set to "be").
    assert [t.lemma_ or fresh(t)[0] for t in doc] == remembered
    assert [t.lemma_ or memo.lemmatize(t)[0] for t in doc] == remembered
    assert remembered[2:4] == ["be", "meet"]
    assert 0 < len(fresh.memo) <= 3


def test_the_remembered_pipeline_gives_every_token_what_spacys_own_pipeline_gives() -> None:
    remembered = load_pipeline()
    assert isinstance(remembered.get_pipe("attribute_ruler"), MemoAttributeRuler)
    plain = spacy.load(MODEL)
    texts = [
        "The ministers were meeting in Jeddah; the talks went well, officials said.",
        "Let's see: we're gonna sign it, y'all, and it ain't over.  Double  spaces too.",
        "He said that Russia had rejected the ceasefire that Ukraine accepted on Tuesday.",
        "The ministers were meeting in Jeddah; the talks went well, officials said.",
    ]
    # Whole articles too: the pipeline multiplies with numpy, spaCy's own with blis.
    texts += [article["text"] for article in seed_articles()]

    def attributes(nlp: Any) -> list[list[tuple[Any, ...]]]:
        return [
            [
                (t.tag_, t.pos_, str(t.morph), t.lemma_, t.dep_, t.head.i, t.ent_type_, t.ent_iob_)
                for t in doc
            ]
            for doc in nlp.pipe(texts)
        ]

    first, again = attributes(remembered), attributes(remembered)
    assert first == again == attributes(plain)
    ruler = remembered.get_pipe("attribute_ruler")
    assert isinstance(ruler, MemoAttributeRuler)
    assert ruler.memo, "the one-token rules' answers are remembered"


def test_the_pipeline_multiplies_with_numpy_on_one_blas_thread() -> None:
    nlp = load_pipeline()
    models = [getattr(component, "model", None) for _, component in nlp.pipeline]
    layers = [layer for model in models if model is not None for layer in model.walk()]
    assert {"tok2vec", "tagger", "parser", "ner"} <= set(nlp.component_names)
    assert layers and all(not getattr(layer.ops, "use_blis", True) for layer in layers)
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)
