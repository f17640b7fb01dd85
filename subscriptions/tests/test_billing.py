"""Proration and billing periods, to the cent."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from subscriptions.billing import monthly_price, period_containing, prorate, to_cents


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


JANUARY = {"period_start": at(2025, 1, 1), "period_end": at(2025, 2, 1)}  # 31 days
FEBRUARY = {"period_start": at(2025, 2, 1), "period_end": at(2025, 3, 1)}  # 28 days
APRIL = {"period_start": at(2025, 4, 1), "period_end": at(2025, 5, 1)}  # 30 days


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(2025, 1, 1), "31.00"),  # period start: the whole price
        (at(2025, 1, 16, 12), "15.50"),  # middle: 15.5 of 31 days left
        (at(2025, 1, 31), "1.00"),  # last day, at its start: one day left
        (at(2025, 1, 31, 12), "0.50"),  # last day, at noon
        (at(2025, 1, 31, 23, 59, 59), "0.00"),  # one second left: 0.0000116 rounds to nothing
        (at(2025, 2, 1), "0.00"),  # period end
        (at(2025, 3, 1), "0.00"),  # after the period: clamped
        (at(2024, 12, 1), "31.00"),  # before the period: clamped
    ],
)
def test_prorate_one_dollar_a_day_at_start_middle_and_last_day(now, expected):
    assert prorate(Decimal("31.00"), **JANUARY, now=now) == Decimal(expected)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(2025, 2, 1), "49.99"),  # start
        (at(2025, 2, 15), "25.00"),  # middle: 49.99 x 14/28 = 24.995, half up
        (at(2025, 2, 28), "1.79"),  # last day: 49.99 / 28 = 1.785357...
        (at(2025, 2, 28, 12), "0.89"),  # last day, noon: 0.892678...
    ],
)
def test_prorate_an_awkward_price_over_february(now, expected):
    assert prorate(Decimal("49.99"), **FEBRUARY, now=now) == Decimal(expected)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(2025, 4, 1), "10.00"),
        (at(2025, 4, 16), "5.00"),  # middle of a 30-day month
        (at(2025, 4, 29), "0.67"),  # 2 of 30 days: 0.6666...
        (at(2025, 4, 30), "0.33"),  # last day: 0.3333...
    ],
)
def test_prorate_over_a_thirty_day_month(now, expected):
    assert prorate(Decimal("10.00"), **APRIL, now=now) == Decimal(expected)


def test_prorate_rounds_half_cents_up_not_to_even():
    # 0.25 x 1/2 = 0.125: half up gives 0.13 (banker's rounding would give 0.12).
    assert prorate(Decimal("0.25"), **JANUARY, now=at(2025, 1, 16, 12)) == Decimal("0.13")


def test_prorate_counts_microseconds_not_whole_days():
    now = at(2025, 1, 16, 12) + timedelta(microseconds=1)

    # 31.00 x (15.5 days - 1 us) / 31 days = 15.4999999...: still 15.50 to the cent
    assert prorate(Decimal("31.00"), **JANUARY, now=now) == Decimal("15.50")


def test_prorate_returns_two_place_decimals():
    result = prorate(Decimal("10"), **APRIL, now=at(2025, 4, 29))

    assert isinstance(result, Decimal)
    assert result.as_tuple().exponent == -2


def test_money_must_be_decimal():
    with pytest.raises(TypeError):
        to_cents(10.5)
    with pytest.raises(TypeError):
        prorate(31.0, **JANUARY, now=at(2025, 1, 2))


def test_monthly_price_is_base_plus_price_per_zipcode_times_count():
    price = monthly_price(base_price=Decimal("49.00"), price_per_zipcode=Decimal("24.50"), zipcode_count=3)

    assert price == Decimal("122.50")


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (at(2025, 1, 1, 9), (at(2025, 1, 1, 9), at(2025, 2, 1, 9))),
        (at(2025, 1, 20), (at(2025, 1, 1, 9), at(2025, 2, 1, 9))),
        (at(2025, 2, 1, 8, 59), (at(2025, 1, 1, 9), at(2025, 2, 1, 9))),
        (at(2025, 2, 1, 9), (at(2025, 2, 1, 9), at(2025, 3, 1, 9))),
        (at(2026, 1, 15), (at(2026, 1, 1, 9), at(2026, 2, 1, 9))),
    ],
)
def test_periods_are_calendar_months_from_the_anchor(moment, expected):
    assert period_containing(at(2025, 1, 1, 9), moment) == expected


def test_periods_anchored_at_month_end_clamp_and_come_back():
    anchor = at(2025, 1, 31, 10)

    assert period_containing(anchor, at(2025, 2, 27)) == (anchor, at(2025, 2, 28, 10))
    assert period_containing(anchor, at(2025, 3, 1)) == (at(2025, 2, 28, 10), at(2025, 3, 31, 10))
    assert period_containing(anchor, at(2025, 4, 15)) == (at(2025, 3, 31, 10), at(2025, 4, 30, 10))
