"""Money and billing-period arithmetic: pure functions, Decimal only, no database.

Billing periods are calendar months anchored at the moment the subscription started:
period k runs from `anchor + k months` (inclusive) to `anchor + (k + 1) months`
(exclusive). Month addition clamps to the end of shorter months and stays anchored,
so a subscription started on January 31 renews on February 28, then March 31.

Proration charges or credits the part of a monthly price that covers the rest of the
current period:

    prorated = monthly_price x (period_end - now) / (period_end - period_start)

with both durations counted in whole microseconds (exact integer arithmetic, no
floating point) and the result rounded half up to the cent. `now` is clamped into the
period: at its start the full price, at or after its end nothing.
"""

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from dateutil.relativedelta import relativedelta

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
_MICROSECOND = timedelta(microseconds=1)


def to_cents(amount: Decimal) -> Decimal:
    """`amount` rounded half up to two places."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be a Decimal, not {type(amount).__name__}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def monthly_price(*, base_price: Decimal, price_per_zipcode: Decimal, zipcode_count: int) -> Decimal:
    """The monthly price of a subscription: base price + price per ZIP code x ZIP codes."""
    return to_cents(base_price + price_per_zipcode * zipcode_count)


def prorate(monthly_amount: Decimal, *, period_start: datetime, period_end: datetime, now: datetime) -> Decimal:
    """The share of `monthly_amount` for the rest of the period after `now`, to the cent (half up)."""
    if period_end <= period_start:
        raise ValueError("a billing period must end after it starts")
    total = (period_end - period_start) // _MICROSECOND
    remaining = (period_end - min(max(now, period_start), period_end)) // _MICROSECOND
    # Exact: cents x remaining / total, rounded half up, in integers (amounts are never negative).
    cents = int(to_cents(monthly_amount) * 100)
    if cents < 0:
        raise ValueError("amounts are never negative; the entry kind carries the sign")
    rounded = (2 * cents * remaining + total) // (2 * total)
    return Decimal(rounded).scaleb(-2)


def nth_period_start(anchor: datetime, months: int) -> datetime:
    return anchor + relativedelta(months=months)


def period_containing(anchor: datetime, moment: datetime) -> tuple[datetime, datetime]:
    """The billing period (start, end) of a subscription anchored at `anchor` that contains `moment`."""
    if moment < anchor:
        raise ValueError("a subscription has no period before it started")
    months = (moment.year - anchor.year) * 12 + (moment.month - anchor.month)
    # The month estimate is at most one off: day and time of month decide.
    while months > 0 and nth_period_start(anchor, months) > moment:
        months -= 1
    while nth_period_start(anchor, months + 1) <= moment:
        months += 1
    return nth_period_start(anchor, months), nth_period_start(anchor, months + 1)
