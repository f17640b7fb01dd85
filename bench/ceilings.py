"""Bench-only views: the ceilings the webhook is measured against in the same run.

Mounted at /api/bench/ only when the BENCH_CEILINGS setting is on (the bench turns it on for
its own gunicorn); never in production URLs. Both are bare Django views behind the same
middleware as the API: `noop` is the framework floor, `insert` writes one row into
`bench_ceiling_lead`, a copy of the lead table's columns and indexes (see `ensure_table`).
"""

import uuid

from django.db import connection
from django.http import HttpResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

TABLE = "bench_ceiling_lead"
BODY = b'{"success": true, "message": "ok", "data": null, "errors": {}}'


def ensure_table() -> None:
    """A lead-sized table: the columns, defaults, checks and indexes of leads_lead, no foreign keys."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (LIKE leads_lead INCLUDING ALL)")


@csrf_exempt
def noop(request):
    return HttpResponse(BODY, content_type="application/json", status=200)


INSERT = (
    f"INSERT INTO {TABLE} (status, received_at, status_changed_at, first_name, last_name, email, phone, zipcode,"
    " address, city, state, lead_type, details, tcpa_consent, consent_text, certificate_url, external_id,"
    " idempotency_key, is_test, portal_id) VALUES ('new', %s, %s, 'Ada', 'Lovelace', %s, '', '10001', '',"
    " 'New York', 'NY', 'auto', '{}', true, '', '', %s, '', false, 1) RETURNING id"
)


@csrf_exempt
def insert(request):
    now = timezone.now()
    token = uuid.uuid4().hex
    with connection.cursor() as cursor:
        cursor.execute(INSERT, [now, now, f"{token}@example.com", token])
        cursor.fetchone()
    return HttpResponse(BODY, content_type="application/json", status=201)


urlpatterns = [path("noop", noop, name="bench-noop"), path("insert", insert, name="bench-insert")]
