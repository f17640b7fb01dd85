"""What the database itself guarantees about leads and offers (constraints, indexes)."""

import json

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from agencies.models import Notification
from agencies.tests.factories import AgencyFactory
from leads import selectors
from leads.models import Lead, Offer, OfferStatus
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


def test_the_database_refuses_a_second_live_offer_for_a_lead():
    lead, first, second = LeadFactory(), AgencyFactory(), AgencyFactory()
    now = timezone.now()
    live = {"lead": lead, "offered_at": now, "expires_at": now + timezone.timedelta(minutes=30)}
    Offer.objects.create(agency=first, **live)

    with pytest.raises(IntegrityError), transaction.atomic():
        Offer.objects.create(agency=second, **live)

    Offer.objects.create(agency=second, **live, status=OfferStatus.REJECTED)


@pytest.mark.parametrize("model", [Lead, Offer, Notification])
def test_every_foreign_key_is_the_first_column_of_an_index(model):
    # The foreign keys of these write-heavy tables have no index of their own when another
    # index starts with the column; lookups by the key (and ON DELETE checks) still need one.
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    leading = {info["columns"][0] for info in constraints.values() if info["index"] or info["unique"]}
    foreign_keys = {field.column for field in model._meta.concrete_fields if field.is_relation}

    assert foreign_keys - leading == set()


def count_plan(queryset, *, off=("seqscan",)) -> str:
    """PostgreSQL's plan for the capped count `capped_count` runs over `queryset`, with the
    scans a test table is small enough to prefer switched off."""
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        for scan in off:
            cursor.execute(f"SET LOCAL enable_{scan} = off")
        cursor.execute(f"EXPLAIN (FORMAT JSON) SELECT COUNT(*) FROM ({sql} LIMIT 10001) AS capped", params)
        return json.dumps(cursor.fetchone()[0])


def test_an_agency_counts_its_visible_leads_from_the_list_index_alone():
    # The list's capped count (leadmarket.api.pagination.capped_count) reads only the index
    # when visibility (status, expiry) is in it: no table rows for a big agency's 10,000.
    plan = count_plan(selectors.agency_leads(AgencyFactory(), now=timezone.now()))

    assert '"Node Type": "Index Only Scan"' in plan
    assert '"Index Name": "offer_agency_list_idx"' in plan


def test_staff_count_the_leads_of_a_zipcode_and_status_from_one_index_range():
    # Plain index scans off too: on a test table another index (then reading the table) can
    # cost about the same, and the planner's pick varied between runs of the suite. What is
    # pinned is that one index answers the count alone, reading only the matching entries.
    only_index_only = ("seqscan", "bitmapscan", "indexscan")
    plan = count_plan(Lead.objects.filter(zipcode="10001", status="accepted"), off=only_index_only)

    assert '"Node Type": "Index Only Scan"' in plan
    assert '"Index Name": "lead_zipcode_status_list_idx"' in plan
    assert '"Filter"' not in plan  # an index condition on both columns, not a filter on the status
