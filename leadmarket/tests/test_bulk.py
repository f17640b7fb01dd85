"""The batch write helpers against PostgreSQL: COPY of plain rows, and `field__any`."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.translation import gettext_lazy

from agencies.models import Agency, Notification, PushStatus
from agencies.tests.factories import AgencyFactory
from leadmarket.bulk import copy_rows
from leads.models import Lead
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def test_copy_rows_stores_the_rows_in_order_with_defaults_for_the_other_fields():
    agency = AgencyFactory()
    rows = [(agency.pk, "lead_offered", f"title {n}", "body", {"lead_id": str(n)}, NOW) for n in range(3)]

    ids = copy_rows(Notification, ("agency_id", "kind", "title", "body", "data", "created_at"), rows)

    stored = {n.pk: n for n in Notification.objects.filter(pk__in=ids)}
    assert [stored[pk].title for pk in ids] == ["title 0", "title 1", "title 2"]
    assert [stored[pk].data for pk in ids] == [{"lead_id": "0"}, {"lead_id": "1"}, {"lead_id": "2"}]
    first = stored[ids[0]]
    assert (first.push_status, first.push_attempts, first.dedupe_key, first.read_at) == (
        PushStatus.PENDING,
        0,
        "",
        None,
    )
    assert copy_rows(Notification, ("agency_id",), []) == []


def test_copy_rows_calls_a_callable_default_for_each_row():
    agency = AgencyFactory()
    # created_at (default timezone.now) and data (default dict) are left out.
    ids = copy_rows(Notification, ("agency_id", "kind", "title", "body"), [(agency.pk, "lead_offered", "t", "b")] * 2)

    first, second = (Notification.objects.get(pk=pk) for pk in ids)
    assert first.data == second.data == {}
    assert first.created_at < second.created_at  # called per row, not once for the batch


def test_copy_rows_prepares_the_values_that_save_would_convert():
    agency = AgencyFactory()
    title = gettext_lazy("Offer expired")  # psycopg cannot send a lazy string: prepared to its text
    names = ("agency_id", "kind", "title", "body", "push_attempts")
    # True in an integer column: prepared to 1 (sent as is, COPY would write "t" and fail).
    rows = [(agency.pk, "lead_offered", title, "b", True), (agency.pk, "lead_offered", "plain", "b", 2)]
    rows.append(rows[0])  # the same objects again after a plain row: prepared again

    ids = copy_rows(Notification, names, rows)

    stored = [Notification.objects.get(pk=pk) for pk in ids]
    assert [(n.title, n.push_attempts) for n in stored] == [("Offer expired", 1), ("plain", 2), ("Offer expired", 1)]


def test_copy_rows_takes_the_ids_from_the_sequence_named_once():
    agency = AgencyFactory()
    row = (agency.pk, "lead_offered", "t", "b")
    copy_rows(Notification, ("agency_id", "kind", "title", "body"), [row])

    with CaptureQueriesContext(connection) as queries:
        ids = copy_rows(Notification, ("agency_id", "kind", "title", "body"), [row] * 3)

    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    # One statement for the ids (the COPY is not in Django's log), and no lookup of the
    # sequence per new id.
    assert len(queries) == 1
    assert "pg_get_serial_sequence" not in queries[0]["sql"]


def test_copy_rows_refuses_a_model_whose_values_come_from_pre_save():
    with pytest.raises(ValueError, match=r"Agency\.updated_at"):  # auto_now
        copy_rows(Agency, ("name",), [("Acme",)])
    assert not Agency.objects.exists()


def test_any_lookup_matches_like_in_with_one_array_parameter():
    leads = [LeadFactory(zipcode=zipcode) for zipcode in ("10001", "10002", "10003")]
    wanted = [leads[0].pk, leads[2].pk]

    with CaptureQueriesContext(connection) as queries:
        found = sorted(Lead.objects.filter(id__any=wanted).values_list("id", flat=True))
        by_zipcode = set(Lead.objects.filter(zipcode__any=["10002", "99999"]).values_list("id", flat=True))
        by_portal = Lead.objects.filter(portal_id__any=[leads[1].portal_id]).count()

    assert found == wanted
    assert by_zipcode == {leads[1].pk}
    assert by_portal == sum(lead.portal_id == leads[1].portal_id for lead in leads)
    assert all("= ANY(" in query["sql"] for query in queries)
    assert Lead.objects.filter(id__any=[]).count() == 0
    # Not cut to the column's size: a longer value matches nothing.
    assert not Lead.objects.filter(zipcode__any=[leads[0].zipcode + "9"]).exists()
    # Like __in: None matches nothing, a model instance is its primary key.
    assert Lead.objects.filter(id__any=[None, leads[1].pk]).count() == 1
    assert Lead.objects.filter(portal__any=[leads[1].portal]).count() == by_portal
    with pytest.raises(TypeError):
        Lead.objects.filter(id__any=Lead.objects.values("id")).count()
