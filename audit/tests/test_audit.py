import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from agencies.tests.factories import AgencyFactory, StaffUserFactory
from audit.models import AuditLog
from audit.services import record_action

pytestmark = pytest.mark.django_db

AUDIT = "/api/admin/audit"


@pytest.fixture
def auditor_client(staff_user):
    from django.contrib.auth.models import Permission

    from agencies.authentication import Realm
    from conftest import client_for

    staff_user.user_permissions.add(Permission.objects.get(codename="view_auditlog"))
    return client_for(staff_user, Realm.STAFF)


def test_audit_rows_cannot_be_updated_or_deleted_even_in_sql(agency):
    entry = record_action(actor=agency.user, action="test.done", target=agency)

    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        AuditLog.objects.filter(pk=entry.pk).update(action="tampered")
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        AuditLog.objects.filter(pk=entry.pk).delete()

    assert AuditLog.objects.get(pk=entry.pk).action == "test.done"


def test_audit_list_filters_by_action_actor_object_and_date(auditor_client, staff_user):
    first, second = AgencyFactory(), AgencyFactory()
    record_action(actor=staff_user, action="agency.suspended", target=first)
    record_action(actor=None, action="lead.offered", target=second)

    by_action = auditor_client.get(AUDIT, {"action": "agency."}).json()["data"]
    by_actor = auditor_client.get(AUDIT, {"actor": staff_user.pk}).json()["data"]
    by_object = auditor_client.get(AUDIT, {"object_type": "agencies.agency", "object_id": second.pk}).json()["data"]
    future = auditor_client.get(AUDIT, {"created_after": "2999-01-01T00:00:00Z"}).json()["data"]

    assert [row["action"] for row in by_action["results"]] == ["agency.suspended"]
    assert by_actor["count"] == 1
    assert [row["action"] for row in by_object["results"]] == ["lead.offered"]
    assert future["count"] == 0


def test_audit_list_query_count_does_not_grow(auditor_client, staff_user):
    agency = AgencyFactory()
    record_action(actor=staff_user, action="a.b", target=agency)
    with CaptureQueriesContext(connection) as few:
        auditor_client.get(AUDIT)
    for n in range(20):
        record_action(actor=staff_user, action=f"a.{n}", target=agency)

    with CaptureQueriesContext(connection) as many:
        response = auditor_client.get(AUDIT)

    assert response.json()["data"]["count"] == 21
    assert len(many) == len(few)


def test_audit_list_needs_the_permission(staff_client):
    assert staff_client.get(AUDIT).status_code == 403


def test_audit_has_no_write_methods(auditor_client):
    assert auditor_client.post(AUDIT, {}).status_code in (403, 405)


def test_django_admin_writes_are_audited_with_before_and_after(client):
    admin_user = StaffUserFactory(is_superuser=True)
    agency = AgencyFactory(business_name="Old Name")
    client.force_login(admin_user)

    response = client.post(
        f"/admin/agencies/agency/{agency.pk}/change/",
        {
            "user": agency.user.pk,
            "business_name": "New Name",
            "contact_name": agency.contact_name,
            "phone": "",
            "status": agency.status,
            "accepting_leads": "on",
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
        },
        REMOTE_ADDR="198.51.100.7",
    )

    assert response.status_code == 302, response.content[:2000]
    entry = AuditLog.objects.get(action="agency.changed_in_admin")
    assert entry.actor == admin_user
    assert entry.ip == "198.51.100.7"
    assert entry.changes["business_name"] == {"before": "Old Name", "after": "New Name"}


def test_admin_audit_never_records_password_hashes(client):
    admin_user = StaffUserFactory(is_superuser=True)
    client.force_login(admin_user)

    client.post(
        "/admin/agencies/user/add/",
        {
            "email": "new@example.com",
            "password1": "a-long-passphrase-1",
            "password2": "a-long-passphrase-1",
            "is_staff": "on",
        },
    )

    entry = AuditLog.objects.get(action="user.created_in_admin")
    assert "password" not in entry.changes
    assert entry.changes["email"]["after"] == "new@example.com"
