"""The coder's general rules, each on sentences written for the test (not from the eval sets)."""

from __future__ import annotations

from datetime import date

import pytest

from services.coder.actors import DocActors
from services.coder.coding import ALL_ROOTS, Coder, load_pipeline

MONDAY = date(2025, 3, 17)


@pytest.fixture(scope="module")
def coder() -> Coder:
    return Coder(load_pipeline(), scope_roots=ALL_ROOTS)


def coded(coder: Coder, sentence: str) -> set[tuple[str, str, str]]:
    return {
        (m.source.cameo_code, m.target.cameo_code, m.action.cameo_code)
        for m in coder.code_sentence(sentence, MONDAY)
    }


def test_names_match_in_any_case_but_acronyms_and_ordinary_words_do_not(coder: Coder) -> None:
    assert coded(coder, "president macron condemned russia on Monday.") == {
        ("FRAGOV", "RUS", "111")
    }
    doc = coder.nlp("They ate rice and turkey with us in china.")
    assert DocActors(doc, coder.actors, on=MONDAY).matches == []


def test_groups_carry_their_country_role_and_code(coder: Coder) -> None:
    assert coded(coder, "Hezbollah fired rockets at Israel on Sunday.") == {
        ("LBNREBHEZ", "ISR", "190")
    }


def test_a_place_stands_in_for_the_target_of_a_show_of_force(coder: Coder) -> None:
    assert coded(coder, "Russian troops held exercises in Alaska.") == {("RUSMIL", "USA", "150")}


def test_an_event_noun_takes_its_doer_from_the_words_before_it(coder: Coder) -> None:
    sentence = "Three people died in Russian artillery shelling in the east of Kharkiv on Monday."
    assert coded(coder, sentence) == {("RUS", "UKR", "194")}


def test_the_passive_subject_of_expected_to_is_the_doer(coder: Coder) -> None:
    assert coded(coder, "Macron is expected to visit Berlin on Friday.") == {
        ("FRAGOV", "DEUGOV", "036")
    }


def test_a_reported_attack_is_an_accusation_and_ones_own_a_claim(coder: Coder) -> None:
    assert coded(coder, "Ukraine said Russia attacked Kharkiv overnight.") == {
        ("UKR", "RUS", "112")
    }
    assert coded(coder, "Hamas said it fired rockets at Israel.") == {("PSEREBHMS", "ISR", "015")}


def test_an_attack_attributed_by_its_own_side_stays_an_attack(coder: Coder) -> None:
    sentence = "The United States bombed Iraq on Monday, the Pentagon said."
    assert {c for _, _, c in coded(coder, sentence)} == {"195"}


def test_an_agentless_passive_names_no_doer(coder: Coder) -> None:
    assert coded(coder, "A missile was fired at Kyiv, Ukraine said.") == set()


def test_an_announced_attack_is_a_threat(coder: Coder) -> None:
    assert coded(coder, "Iran will attack Israel.") == {("IRN", "ISR", "138")}


def test_an_act_asked_of_another_is_an_appeal_not_the_act(coder: Coder) -> None:
    assert coded(coder, "France urged Russia to withdraw from Ukraine.") == {("FRA", "RUS", "020")}


def test_an_announcing_verb_gives_way_to_the_act_it_announces(coder: Coder) -> None:
    assert coded(coder, "Russia agreed to withdraw its troops from Ukraine.") == {
        ("RUS", "UKR", "0356")
    }


def test_no_event_when_neither_side_is_placed(coder: Coder) -> None:
    assert coded(coder, "Rebels killed civilians overnight.") == set()


def test_a_hyphenated_affiliation_is_not_the_actor(coder: Coder) -> None:
    assert coded(coder, "Russian-backed separatists attacked Ukrainian troops.") == {
        ("---REB", "UKRMIL", "190")
    }


def test_an_act_under_a_request_noun_is_not_done(coder: Coder) -> None:
    assert coded(coder, "Germany faces pressure to send weapons to Ukraine.") == set()


def test_holding_talks_is_negotiating_as_the_cameo_manual_has_it(coder: Coder) -> None:
    assert coded(coder, "France held talks with Germany on Monday.") == {
        ("FRA", "DEU", "046"),
        ("DEU", "FRA", "046"),
    }


def test_said_must_is_a_demand_whatever_the_inner_verb(coder: Coder) -> None:
    assert coded(coder, "France said Russia must drop its claims.") == {("FRA", "RUS", "100")}


def test_wanting_another_to_act_is_an_appeal_to_it(coder: Coder) -> None:
    assert coded(coder, "Washington wants Kyiv to sign the minerals deal.") == {
        ("USAGOV", "UKRGOV", "020")
    }


def test_they_after_a_compound_subject_is_every_member(coder: Coder) -> None:
    assert coded(coder, "Britain and France said they would attack Syria.") == {
        ("GBR", "SYR", "138"),
        ("FRA", "SYR", "138"),
    }


def test_a_reported_attack_accuses_even_without_a_named_target(coder: Coder) -> None:
    assert coded(coder, "Ukraine said Russia attacked overnight.") == {("UKR", "RUS", "112")}


def test_receiving_from_a_giver_is_the_givers_act(coder: Coder) -> None:
    assert coded(coder, "Ukraine received air defence weapons from Germany on Monday.") == {
        ("DEU", "UKR", "072")
    }


def test_force_used_from_a_country_is_that_countrys(coder: Coder) -> None:
    assert coded(coder, "Rockets were fired at Israel from Lebanon on Sunday.") == {
        ("LBN", "ISR", "190")
    }
    assert coded(coder, "Israel said rockets were fired at it from Lebanon.") == {
        ("ISR", "LBN", "112")
    }


def test_a_by_phrase_names_the_doer_even_when_it_is_no_actor(coder: Coder) -> None:
    sentence = "Germany sent experts to identify victims killed by the storm in Greece."
    assert {c[:2] for _, _, c in coded(coder, sentence)} == set()


def test_met_with_is_one_way_held_talks_both(coder: Coder) -> None:
    assert coded(coder, "Macron met with Scholz in Berlin.") == {("FRAGOV", "DEUGOV", "040")}


def test_protesting_in_a_place_is_demonstrating_against_denouncing(coder: Coder) -> None:
    assert {c for _, _, c in coded(coder, "Iranian students protested in Tehran on Monday.")} == {
        "141"
    }
    assert coded(coder, "France protested against Russia's decision.") == {("FRA", "RUS", "111")}


def test_decline_codes_only_with_an_infinitive(coder: Coder) -> None:
    assert coded(coder, "Iran declined to release the French hostages.") == {("IRN", "FRA", "120")}
    assert coded(coder, "Japan's Nikkei declined while South Korea's Kospi fell.") == set()


def test_a_promising_light_verb_announces_its_nouns_act(coder: Coder) -> None:
    assert coded(coder, "Germany pledged military aid to Ukraine.") == {("DEU", "UKR", "0332")}
    assert coded(coder, "The US imposed sanctions on Iran.") == {("USA", "IRN", "163")}


def test_a_passive_light_verb_carries_its_subjects_code(coder: Coder) -> None:
    assert coded(coder, "Evidence against Iran was produced by France.") == {("FRA", "IRN", "112")}
    # Evidence accuses only when it is evidence against someone.
    assert not any(c[2] == "112" for c in coded(coder, "France presented evidence to Iran."))


def test_a_participle_acts_on_the_noun_it_modifies(coder: Coder) -> None:
    assert ("FRA", "IRNDIP", "166") in coded(
        coder, "The Iranian diplomats expelled by France left."
    )


def test_a_coordinated_passive_acts_on_the_first_clause_subject(coder: Coder) -> None:
    assert ("RUSGOV", "---CVL", "084") in {
        (s, t, c)
        for s, t, c in coded(
            coder, "The civilians were arrested in March and were released by Putin on Monday."
        )
    }


def test_forces_killed_in_another_country_imply_that_countrys_force(coder: Coder) -> None:
    assert coded(coder, "Five French soldiers were killed in Mali on Monday.") == {
        ("MLI", "FRAMIL", "190")
    }
    # Killed at home, or with nobody's forces named: nothing is implied.
    assert coded(coder, "Five French soldiers were killed in France on Monday.") == set()
    assert coded(coder, "Five tourists were killed in Mali on Monday.") == set()


def test_a_bare_institution_has_no_country_in_a_sentence_alone(coder: Coder) -> None:
    assert coded(coder, "Parliament condemned Iran on Monday.") == {("---LEG", "IRN", "111")}
    # Whose it is, when said, is kept.
    assert coded(coder, "The Iranian parliament condemned Israel on Monday.") == {
        ("IRNLEG", "ISR", "111")
    }


def test_a_bare_institution_is_the_country_the_article_is_about(coder: Coder) -> None:
    text = (
        "Brazil's president Luiz Inacio Lula da Silva spoke in Brasilia on Monday.\n"
        "Brazil will host the summit, Brazil's foreign ministry said.\n"
        "Congress condemned Argentina and Chile on Monday."
    )
    mentions = coder.code_text(text, MONDAY)
    assert ("BRALEG", "ARG", "111") in {
        (m.source.cameo_code, m.target.cameo_code, m.action.cameo_code) for m in mentions
    }


def test_an_act_asked_of_a_passive_subject_is_not_done(coder: Coder) -> None:
    assert not any(c[2] == "070" for c in coded(coder, "Obama was pressed by Iran to help Iraq."))


def test_meeting_to_discuss_is_one_meeting(coder: Coder) -> None:
    assert coded(coder, "Macron met Scholz in Berlin to discuss trade on Monday.") == {
        ("FRAGOV", "DEUGOV", "040")
    }


def test_an_announced_act_is_trusted_less_than_one_done(coder: Coder) -> None:
    """The GSR often codes the act an announcement names (see docs/coder.md), so the fitted
    table puts announced intent below the 0.7 a subscriber may filter on."""
    done = coder.code_sentence("Macron met Scholz in Berlin on Monday.", MONDAY)
    announced = coder.code_sentence("Macron will meet Scholz in Berlin on Friday.", MONDAY)
    assert [m.basis for m in done] == ["verb/direct/act/named"]
    assert [m.basis for m in announced] == ["verb/direct/intent/named"]
    assert done[0].confidence >= 0.7 > announced[0].confidence


def test_a_passive_hostile_act_takes_its_doer_from_the_act_it_happened_in(coder: Coder) -> None:
    assert ("UKRGOV", "RUS", "112") in coded(
        coder, "Zelensky said five civilians were killed in an air strike by Russia on Monday."
    )


def test_expelling_armed_forces_is_force_and_diplomats_an_expulsion(coder: Coder) -> None:
    assert coded(coder, "Russia expelled Ukrainian troops from Kursk on Monday.") == {
        ("RUS", "UKRMIL", "190")
    }
    assert coded(coder, "Russia expelled Ukrainian diplomats on Monday.") == {
        ("RUS", "UKRDIP", "166")
    }


def test_a_reporting_verb_acts_on_its_own_object_not_on_what_it_reports(coder: Coder) -> None:
    assert coded(coder, "Germany warned that Iran wants to delay the talks.") == set()
    assert ("DEU", "IRN", "130") in coded(coder, "Germany warned Iran on Monday.")


def test_a_circumstantial_clause_names_no_target(coder: Coder) -> None:
    # The subordinate clause's actors are when and why, not whom the appeal is to.
    found = coded(coder, "Even as Macron visited Kyiv, Putin urged his generals on.")
    assert not any(source == "RUSGOV" for source, _, _ in found), found
    assert (
        coded(coder, "Poland warned that if foreign troops entered Belarus, they would be shot.")
        == set()
    )


def test_a_threats_condition_names_whom_it_threatens(coder: Coder) -> None:
    assert ("EGY", "ISR", "130") in coded(
        coder, "Egypt threatened to close the border unless Israel withdrew its forces."
    )


def test_a_reduced_relative_misparsed_as_a_finite_verb_does_not_make_its_noun_the_doer(
    coder: Coder,
) -> None:
    found = coded(
        coder, "The journalists detained for reporting on Minsk were freed on Monday by Lukashenko."
    )
    assert not any(source.startswith("---") for source, _, _ in found), found


def test_troops_in_a_country_are_not_that_countrys_troops(coder: Coder) -> None:
    found = coded(coder, "Russia will oppose any troops in Ukraine.")
    assert not any(target.startswith("UKR") for _, target, _ in found), found
    assert ("RUS", "UKRMIL", "111") in coded(coder, "Russia condemned the troops of Ukraine.")


def test_an_ownerless_report_is_its_publishers(coder: Coder) -> None:
    assert coded(coder, "A report released in Paris accused Iran of torture.") == {
        ("FRAGOV", "IRN", "112")
    }
    assert ("IGOEUREEC", "IRN", "112") in coded(
        coder, "A report published by the EU accused Iran of torture."
    )


def test_facing_pressure_from_another_is_the_others_demand(coder: Coder) -> None:
    assert ("CHN", "RUSGOV", "100") in coded(coder, "The Kremlin faces pressure from China.")
    assert coded(coder, "Russia faces new sanctions.") == set()
