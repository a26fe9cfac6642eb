"""The published arithmetic of the differential (knowledge sheet §3a, Paul et al.)."""

from __future__ import annotations

import math

import pytest

from cds.engine.differential import posterior_probability

SENSITIVITY, SPECIFICITY = 0.89, 0.97
LR_POSITIVE = SENSITIVITY / (1 - SPECIFICITY)  # 29.67
LR_NEGATIVE = (1 - SENSITIVITY) / SPECIFICITY  # 0.113


def test_likelihood_ratios_from_sensitivity_and_specificity():
    assert pytest.approx(29.67, abs=0.01) == LR_POSITIVE
    assert pytest.approx(0.113, abs=0.001) == LR_NEGATIVE


# The sheet's table gives whole percentages; 0.04 -> 55.3% rounds to 55%.
def test_pretest_10_percent_positive_scan_gives_76_to_77_percent():
    assert 76 <= round(100 * posterior_probability(0.10, [LR_POSITIVE])) <= 77
    assert 76 <= round(100 * posterior_probability(0.10, [29.7])) <= 77  # the value in rules/


def test_pretest_4_percent_positive_scan_gives_53_to_55_percent():
    assert 53 <= round(100 * posterior_probability(0.04, [LR_POSITIVE])) <= 55
    assert 53 <= round(100 * posterior_probability(0.04, [29.7])) <= 55


def test_pretest_30_percent_negative_scan_gives_about_4_6_percent():
    assert posterior_probability(0.30, [0.11]) == pytest.approx(0.0450, abs=0.001)
    assert posterior_probability(0.30, [LR_NEGATIVE]) == pytest.approx(0.046, abs=0.001)


def test_no_evidence_leaves_the_prior():
    assert posterior_probability(0.1, []) == pytest.approx(0.1)


def test_ratios_multiply_as_odds():
    # odds 1/9 * 3 * 2 = 2/3 -> probability 0.4
    assert posterior_probability(0.1, [3.0, 2.0]) == pytest.approx(0.4)


def test_extreme_products_stay_finite():
    assert posterior_probability(0.5, [1e6] * 200) == 1.0
    assert 0 <= posterior_probability(0.5, [1e-6] * 200) < 1e-300 or posterior_probability(0.5, [1e-6] * 200) == 0.0
    assert not math.isnan(posterior_probability(0.01, [29.7, 0.11, 3.0]))


@pytest.mark.parametrize("prior", [0.0, 1.0, -0.1])
def test_prior_must_be_a_probability(prior):
    with pytest.raises(ValueError):
        posterior_probability(prior, [2.0])
