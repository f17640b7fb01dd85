import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leadmarket.celery import app as celery_app
from leads import distribution, services, tasks
from leads.models import Lead, LeadStatus, Offer
from leads.standard import normalize_lead
from leads.tests.factories import distribute_lead, subscribed_agency
from portals.tests.factories import make_portal

pytestmark = pytest.mark.django_db

VALUES = {"email": "ada@example.com", "zipcode": "10001"}


def store(portal, **overrides):
    values = normalize_lead(VALUES | overrides)
    return services.create_lead(portal=portal, values=values, idempotency_key="", now=timezone.now())


def test_distribute_lead_without_agencies_makes_the_lead_unassigned_once():
    portal, _ = make_portal()
    lead = store(portal)
    now = timezone.now()

    distribute_lead(lead_id=lead.pk, now=now)
    distribute_lead(lead_id=lead.pk, now=now)  # a task delivered twice

    lead.refresh_from_db()
    assert lead.status == LeadStatus.UNASSIGNED
    assert not Offer.objects.exists()


def test_distribute_lead_leaves_duplicates_test_leads_and_unknown_ids_alone():
    portal, _ = make_portal()
    original = store(portal)
    duplicate = store(portal, external_id="2")
    test = store(portal, external_id="3", is_test=True)

    for lead in (duplicate, test):
        distribute_lead(lead_id=lead.pk, now=timezone.now())
    assert distribute_lead(lead_id=10**9, now=timezone.now()) is None

    assert duplicate.duplicate_of == original
    assert set(Lead.objects.values_list("status", flat=True)) == {"new", "duplicate", "test"}


def test_distribute_new_leads_offers_waiting_leads_oldest_first_and_nothing_else():
    agencies = [subscribed_agency("10001") for _ in range(2)]
    portal, _ = make_portal()
    first, second = store(portal), store(portal, email="b@example.com")
    Lead.objects.filter(pk=first.pk).update(received_at=timezone.now() - timedelta(minutes=10))
    nobody = store(portal, email="c@example.com", zipcode="90210")
    test = store(portal, email="t@example.com", is_test=True)

    assert distribution.distribute_new_leads() == 3

    assert [Offer.objects.get(lead=lead).agency_id for lead in (first, second)] == [a.id for a in agencies]
    statuses = dict(Lead.objects.values_list("id", "status"))
    assert (statuses[nobody.pk], statuses[test.pk]) == (LeadStatus.UNASSIGNED, LeadStatus.TEST)
    assert distribution.distribute_new_leads() == 0


def test_distribute_new_leads_pages_through_more_leads_than_a_batch():
    subscribed_agency("10001")
    portal, _ = make_portal()
    for number in range(7):
        store(portal, email=f"{number}@example.com", zipcode=("10001", "10002")[number % 2])

    assert distribution.distribute_new_leads(batch_size=2) == 7
    assert not Lead.objects.filter(status=LeadStatus.NEW).exists()


def test_a_run_reads_the_new_leads_once_when_they_fit_in_a_batch():
    portal, _ = make_portal()
    for number in range(3):
        store(portal, email=f"{number}@example.com")

    with CaptureQueriesContext(connection) as queries:
        assert distribution.distribute_new_leads() == 3

    reads = [q["sql"] for q in queries if q["sql"].startswith('SELECT "leads_lead"') and "SKIP LOCKED" in q["sql"]]
    assert len(reads) == 1  # no second read to find nothing


@pytest.mark.django_db(transaction=True)
def test_the_duplicate_check_locks_only_leads_sharing_a_contact():
    portal, _ = make_portal()
    holding, release = threading.Event(), threading.Event()

    def first_lead_still_committing():
        try:
            with transaction.atomic():
                store(portal, email="first@example.com", external_id="first")
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    def store_within(seconds: float, **values):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{int(seconds * 1000)}ms'")
            return store(portal, **values)

    thread = threading.Thread(target=first_lead_still_committing)
    thread.start()
    try:
        assert holding.wait(10)
        # Same ZIP code, another contact: does not wait for the first lead's transaction.
        other = store_within(1, email="other@example.com", external_id="other")
        # Same ZIP code and email: could be its duplicate, so it waits its turn.
        with pytest.raises(OperationalError):
            store_within(0.3, email="first@example.com", external_id="again")
    finally:
        release.set()
        thread.join()

    assert other.status == LeadStatus.NEW
    assert store_within(1, email="first@example.com", external_id="later").status == LeadStatus.DUPLICATE


@pytest.fixture
def queued_runs(monkeypatch):
    queued = []
    monkeypatch.setattr("leads.tasks.distribute_new_leads.apply_async", lambda **kwargs: queued.append(kwargs))
    return queued


@pytest.fixture
def clock(monkeypatch):
    """The wall and monotonic clocks `request_distribution` reads, set by the test."""
    now = [1_800_000_000.0]
    monkeypatch.setattr("leads.services.wall_clock", lambda: now[0])
    monkeypatch.setattr("leads.services.monotonic", lambda: now[0])
    return now


@pytest.fixture
def flag_requests(monkeypatch):
    """The distribution flag's cache calls."""
    calls = []
    for name in ("add", "get"):
        original = getattr(cache, name)
        monkeypatch.setattr(cache, name, lambda *args, _f=original, _n=name, **kw: calls.append(_n) or _f(*args, **kw))
    return calls


def test_a_burst_of_new_leads_queues_one_run_and_asks_redis_once(
    queued_runs, clock, flag_requests, django_capture_on_commit_callbacks
):
    portal, _ = make_portal()
    with django_capture_on_commit_callbacks(execute=True):
        for number in range(3):
            store(portal, email=f"{number}@example.com")

    assert len(queued_runs) == 1
    assert queued_runs[0]["countdown"] == settings.DISTRIBUTION_DELAY_SECONDS  # the burst's leads share the run
    # This process queued the run, so it knows when the run starts and reads these leads.
    assert flag_requests == ["get", "add"]


def test_a_lead_shortly_before_the_queued_run_starts_asks_again(queued_runs, clock, flag_requests):
    services.request_distribution()
    starts_at = clock[0] + settings.DISTRIBUTION_DELAY_SECONDS

    clock[0] = starts_at - services.CLOCK_MARGIN_SECONDS - 0.01
    services.request_distribution()
    assert (len(queued_runs), flag_requests) == (1, ["get", "add"])

    clock[0] = starts_at - services.CLOCK_MARGIN_SECONDS  # the run may have started: the flag decides
    services.request_distribution()
    clock[0] = starts_at + 1
    services.request_distribution()
    assert (len(queued_runs), flag_requests) == (1, ["get", "add", "get", "get"])  # overdue, still queued

    services.distribution_started()
    clock[0] = starts_at + 5
    services.request_distribution()
    assert [run["kwargs"] for run in queued_runs] == [{}, {"follow_up": True}, {}]


def test_a_due_run_is_rechecked_at_most_every_recheck_interval(queued_runs, clock, flag_requests):
    services.request_distribution()
    clock[0] += settings.DISTRIBUTION_DELAY_SECONDS + 1  # the run is due, the worker is behind
    services.request_distribution()  # still queued: that run will read this lead

    clock[0] += services.DISTRIBUTION_RECHECK_SECONDS / 2
    services.request_distribution()  # not asked: the run, or its follow-up pass, reads it
    assert flag_requests == ["get", "add", "get"]
    clock[0] += services.DISTRIBUTION_RECHECK_SECONDS / 2
    services.request_distribution()
    assert flag_requests == ["get", "add", "get", "get"]
    assert len(queued_runs) == 1


def test_the_recheck_interval_counts_from_before_a_slow_flag_read(queued_runs, clock, monkeypatch):
    cache.set(services.DISTRIBUTION_QUEUED_KEY, clock[0] - 1, 60)  # due: the worker is behind
    read, reads = cache.get, []

    def slow_read(*args, **kwargs):
        reads.append(clock[0])
        clock[0] += 0.08  # the run may start while this process waits for the answer
        return read(*args, **kwargs)

    monkeypatch.setattr(cache, "get", slow_read)
    checked_at = clock[0]
    services.request_distribution()
    clock[0] = checked_at + services.DISTRIBUTION_RECHECK_SECONDS
    services.request_distribution()

    assert reads == [checked_at, checked_at + services.DISTRIBUTION_RECHECK_SECONDS]


def test_a_run_queues_a_follow_up_that_starts_after_the_recheck_interval(queued_runs, clock, flag_requests):
    services.request_distribution()
    clock[0] += settings.DISTRIBUTION_DELAY_SECONDS + 1
    services.request_distribution()  # the run is due: this process stops asking for a while

    services.distribution_started()  # the run starts at any moment after that read
    clock[0] += 0.02
    services.request_distribution()  # not asked: the follow-up pass reads this lead

    follow_up = queued_runs[1]
    assert follow_up["kwargs"] == {"follow_up": True}
    assert follow_up["countdown"] >= services.DISTRIBUTION_RECHECK_SECONDS + services.CLOCK_MARGIN_SECONDS
    assert len(queued_runs) == 2
    clock[0] += services.DISTRIBUTION_RECHECK_SECONDS
    services.request_distribution()  # after the recheck: no flag, so a new run
    assert [run["kwargs"] for run in queued_runs] == [{}, {"follow_up": True}, {}]


def test_the_follow_up_pass_distributes_what_a_run_left_and_queues_nothing(queued_runs, clock):
    subscribed_agency("10001")
    portal, _ = make_portal()
    store(portal)
    services.request_distribution()
    assert tasks.distribute_new_leads.run() == 1
    late = store(portal, email="late@example.com")  # committed while its process skipped the flag
    queued_before = len(queued_runs)

    assert tasks.distribute_new_leads.run(**queued_runs[-1]["kwargs"]) == 1

    late.refresh_from_db()
    assert late.status == LeadStatus.OFFERED
    assert len(queued_runs) == queued_before  # a follow-up has no follow-up of its own


def test_a_run_queued_by_another_process_is_read_once_then_trusted(queued_runs, clock, flag_requests):
    starts_at = clock[0] + 0.4
    cache.set(services.DISTRIBUTION_QUEUED_KEY, starts_at, 60)  # another web process queued it

    for _ in range(3):
        services.request_distribution()

    assert queued_runs == []
    assert flag_requests == ["get"]
    clock[0] = starts_at
    services.request_distribution()
    assert flag_requests == ["get", "get"]


def test_a_flag_from_a_clock_far_ahead_silences_a_process_for_one_delay_at_most(queued_runs, clock, flag_requests):
    cache.set(services.DISTRIBUTION_QUEUED_KEY, clock[0] + 3600, 60)

    services.request_distribution()
    clock[0] += settings.DISTRIBUTION_DELAY_SECONDS
    services.request_distribution()

    assert flag_requests == ["get", "get"]


def test_runs_in_this_process_leave_nothing_to_skip_for(clock, django_capture_on_commit_callbacks):
    celery_app.conf.task_always_eager = True  # no broker: the run happens inside the request
    try:
        subscribed_agency("10001")
        portal, _ = make_portal()
        with django_capture_on_commit_callbacks(execute=True):
            first = store(portal, email="first@example.com")
        clock[0] += 0.1
        with django_capture_on_commit_callbacks(execute=True):
            second = store(portal, email="second@example.com")
    finally:
        celery_app.conf.task_always_eager = False

    assert Offer.objects.filter(lead__in=[first, second]).count() == 2


def test_a_failed_enqueue_does_not_silence_the_next_lead(monkeypatch, caplog):
    attempts = []

    def broker_down(**kwargs):
        attempts.append(kwargs)
        raise ConnectionError("broker down")

    monkeypatch.setattr("leads.tasks.distribute_new_leads.apply_async", broker_down)

    services.request_distribution()
    services.request_distribution()

    assert len(attempts) == 2
    assert "could not enqueue leads.tasks.distribute_new_leads" in caplog.text


def test_the_queued_run_distributes_and_clears_the_flag(queued_runs, clock):
    subscribed_agency("10001")
    portal, _ = make_portal()
    lead = store(portal)
    services.request_distribution()

    assert tasks.distribute_new_leads.run() == 1

    lead.refresh_from_db()
    assert lead.status == LeadStatus.OFFERED
    assert cache.get(services.DISTRIBUTION_QUEUED_KEY) is None
    clock[0] += settings.DISTRIBUTION_DELAY_SECONDS
    services.request_distribution()
    assert [run["kwargs"] for run in queued_runs] == [{}, {"follow_up": True}, {}]  # the run cleared the flag


def test_distribute_new_leads_command_distributes_in_this_process():
    portal, _ = make_portal()
    lead = store(portal)
    out = StringIO()

    call_command("distribute_new_leads", stdout=out)

    lead.refresh_from_db()
    assert lead.status == LeadStatus.UNASSIGNED
    assert "Distributed 1 waiting lead(s)." in out.getvalue()


def test_the_catch_up_run_is_scheduled():
    entry = settings.CELERY_BEAT_SCHEDULE["distribute-new-leads"]

    assert entry["task"] == "leads.tasks.distribute_new_leads"


def test_normalize_lead_fills_city_and_state_and_formats_phone():
    lead = normalize_lead({"phone": "212 555 0100", "zipcode": "10001-1234", "email": "A@EXAMPLE.COM"})

    assert (lead["phone"], lead["zipcode"], lead["city"], lead["state"]) == ("+12125550100", "10001", "New York", "NY")
    assert lead["email"] == "A@example.com"


def test_demo_data_creates_the_demo_portal_idempotently_with_a_fresh_key(api_client):
    first, second = StringIO(), StringIO()

    call_command("demo_data", stdout=first)
    call_command("demo_data", stdout=second)

    from portals.models import Portal, PortalKey

    portal = Portal.objects.get(code="demo")
    assert PortalKey.objects.filter(portal=portal, revoked_at__isnull=True).count() == 1
    key = second.getvalue().split("API key ")[1].split()[0]
    assert key not in first.getvalue()
    assert "curl -s -X POST http://127.0.0.1:8000/api/webhooks/demo" in second.getvalue()
    from portals.selectors import forget_all_portals
    from portals.tests.helpers import LEAD, post_json

    forget_all_portals()
    assert post_json(api_client, "demo", LEAD, key).status_code == 201
