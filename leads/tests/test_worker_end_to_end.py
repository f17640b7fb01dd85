"""End to end through a real Celery worker on Redis: webhook → hand-off → offer → push."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from agencies.models import Device, Notification, NotificationKind, PushStatus
from leadmarket.celery import app as celery_app
from leads.models import Lead, LeadStatus
from leads.tests.factories import LeadFactory, subscribed_agency
from portals.tests.factories import make_portal

pytestmark = pytest.mark.django_db(transaction=True)


WORKER_APPLICATION_NAME = f"leadmarket-e2e-worker-{os.getpid()}"


@pytest.fixture
def worker():
    """A real worker process on the test database and the test Redis, logging to a pipe."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_DEBUG": "1",
        "LOG_FORMAT": "console",
        "FCM_CREDENTIALS_FILE": "",
        "PGAPPNAME": WORKER_APPLICATION_NAME,  # names its database connections (libpq)
        "DATABASE_CONN_MAX_AGE": "60",
        "REDISTRIBUTION_PARTITIONS": "2",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "leadmarket",
            "worker",
            "--queues",
            "celery,push",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_for(condition, timeout: float = 40.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis as the Celery broker (REDIS_URL)")
def test_webhook_lead_is_offered_and_pushed_by_a_real_worker(worker):
    agency = subscribed_agency("10001")
    Device.objects.create(agency=agency, token="fcm-token-1", platform="android")
    _, key = make_portal("e2e")

    response = APIClient().post(
        "/api/webhooks/e2e",
        {"email": "e2e@example.com", "zipcode": "10001"},
        format="json",
        HTTP_X_API_KEY=key,
        HTTP_X_REQUEST_ID="e2e-request-42",
    )

    assert response.status_code == 201
    pushed = wait_for(
        lambda: Notification.objects.filter(
            agency=agency, kind=NotificationKind.LEAD_OFFERED, push_status=PushStatus.SENT
        ).exists()
    )
    # The distribution run, its follow-up pass and the push shared one database connection,
    # which stays open between tasks (Celery's Django fixup would close it after each).
    time.sleep(1)  # the follow-up pass starts 0.3 s after its run
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            [WORKER_APPLICATION_NAME],
        )
        worker_connections = cursor.fetchone()[0]
    worker.send_signal(signal.SIGTERM)
    log = worker.communicate(timeout=20)[0]
    assert pushed, log
    assert worker_connections == 1, log
    runs = [line for line in log.splitlines() if "distribute_new_leads[" in line and "succeeded" in line]
    assert len(runs) >= 2, log  # the run and its follow-up pass
    assert Lead.objects.get().status == LeadStatus.OFFERED
    assert "leads.tasks.distribute_new_leads" in log
    assert "agencies.tasks.push_notifications" in log
    # The request id travelled with the hand-off into the worker's log lines.
    assert any("e2e-request-42" in line and "distributed 1 lead(s) in 10001" in line for line in log.splitlines()), log


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis as the Celery broker (REDIS_URL)")
def test_the_minute_redistribution_runs_in_parts_on_a_real_worker(worker, monkeypatch):
    # Subscribing queues its own retry of these ZIP codes; only the minute's run is wanted here.
    monkeypatch.setattr("leads.tasks.redistribute_leads.apply_async", lambda *args, **options: None)
    zipcodes = [f"100{n:02d}" for n in range(1, 13)]
    for _ in range(2):
        subscribed_agency(*zipcodes)
    leads = [LeadFactory(zipcode=zipcode, status=LeadStatus.UNASSIGNED) for zipcode in zipcodes for _ in range(2)]

    celery_app.send_task("leads.tasks.redistribute_leads")  # as beat sends it

    offered = wait_for(lambda: Lead.objects.filter(status=LeadStatus.OFFERED).count() == len(leads))
    worker.send_signal(signal.SIGTERM)
    log = worker.communicate(timeout=20)[0]
    assert offered, log
    runs = [line for line in log.splitlines() if "redistribute_leads[" in line and "succeeded" in line]
    assert len(runs) == 3, log  # the minute's run and its two parts
    assert "{'partitions': 2}" in log, log
    offered_by_part = sorted(int(m) for line in runs for m in re.findall(r"'offered': (\d+)", line))
    assert offered_by_part == [10, 14], log  # two leads in each of 5 and 7 ZIP codes
