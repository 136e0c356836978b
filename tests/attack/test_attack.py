"""The card-testing simulations, small, in the suite (tests/attack/run.py runs the issue's sizes).

The attack: 1,000 attempts from 100 addresses with 95 % declining test cards, 60 honest donors among
them (five families of three on one address each, six resubmitting their donation): the same targets
as the large run, with the template's limits and the attack mode's quiet period cut to 5 s.

A campaign day: 300 honest donors at once, 8 % of them declined (24: more than the 20 declines that
alone opened the attack mode before it judged the rate), 40 sharing addresses, each donor with a card of
their own (so no card is declined twice, as on a real campaign day).
"""

from __future__ import annotations

import io

import pytest

from tests.attack.run import run_attack, run_campaign
from tests.attack.simulation import AttackConfig, CampaignConfig

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_card_testing_attack_is_stopped_before_stripe_and_no_honest_donor_is_refused() -> None:
    config = AttackConfig(attempts=1000, addresses=100, honest=60, families=5, resubmitting=6, quiet_seconds=5)
    out = io.StringIO()

    report = run_attack(config, out)

    print(out.getvalue())
    assert report.attack_reached_stripe < 0.05 * config.attempts
    assert report.attack_reached_stripe == report.attack_reached_by_answer  # Stripe's count and the answers agree
    assert report.honest_refused == [] and report.honest_charged == config.honest
    assert report.honest_challenged > 0  # the honest donors met the attack mode, and passed it
    assert report.answers["attack"][403] > 0.9 * config.attempts
    assert report.seconds_to_alarm is not None and report.seconds_to_alarm <= 120
    assert report.seconds_to_close is not None  # the attack mode ended by itself after the attack


def test_a_campaign_day_with_an_honest_decline_rate_meets_no_captcha_and_no_429() -> None:
    config = CampaignConfig(donors=300, households=5, venues=2)
    out = io.StringIO()

    report = run_campaign(config, out)

    print(out.getvalue())
    assert report.declined_cards == 24 and report.answers[402] == 24
    assert report.cards_charged == config.donors and report.most_declines_of_a_card == 1  # each donor's own card
    assert report.challenged == 0 and report.throttled == 0
    assert not report.attack_mode_on
    assert report.answers[201] == config.donors - report.declined_cards
    assert "PASS" in out.getvalue().splitlines()[-1]
