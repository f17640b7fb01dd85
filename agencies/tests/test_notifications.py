import contextlib
import json
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from unittest.mock import Mock

import firebase_admin
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from firebase_admin import exceptions, messaging

from agencies import notifications, push
from agencies.models import Device, Notification, NotificationKind, PushStatus
from agencies.tasks import RETRY_CLOCK_MARGIN_SECONDS
from agencies.tasks import push_notifications as push_task
from agencies.tests.factories import AgencyFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


@dataclass
class FakeFCM:
    sent: list = field(default_factory=list)  # the MulticastMessages firebase-admin built
    replies: list = field(default_factory=list)  # per call: {token: exception}; others succeed

    def __len__(self):
        return len(self.sent)

    def __getitem__(self, index):
        return self.sent[index]

    def __eq__(self, other):
        return self.sent == other


@pytest.fixture
def fcm(settings, tmp_path, monkeypatch):
    """Real firebase-admin code with a real (throwaway) service account; only the network
    call, messaging.send_each_for_multicast, is replaced. Returns the list of sent messages."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    account = tmp_path / "service-account.json"
    account.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "leadmarket-test",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "push@leadmarket-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    settings.FCM_CREDENTIALS_FILE = str(account)
    push._backend_for.cache_clear()
    fake = FakeFCM()
    sent, replies = fake.sent, fake.replies

    def send_each_for_multicast(message, dry_run=False, app=None):
        sent.append(message)
        outcome = replies.pop(0) if replies else {}
        return messaging.BatchResponse(
            [
                messaging.SendResponse(None, outcome[token])
                if token in outcome
                else messaging.SendResponse({"name": f"projects/x/messages/{n}"}, None)
                for n, token in enumerate(message.tokens)
            ]
        )

    monkeypatch.setattr(messaging, "send_each_for_multicast", send_each_for_multicast)
    yield fake
    push._backend_for.cache_clear()
    with contextlib.suppress(ValueError):  # not created when no push reached FCM
        firebase_admin.delete_app(firebase_admin.get_app("leadmarket"))


def make_notification(agency, **fields) -> Notification:
    return Notification.objects.create(
        agency=agency,
        kind=NotificationKind.LEAD_OFFERED,
        title="New lead",
        body="A lead in 10001",
        data={"lead_id": "7"},
        created_at=NOW,
        **fields,
    )


def push_owed(*, requested: bool = False) -> notifications.PushResults:
    return notifications.push_owed_notifications(now=NOW, requested=requested)


def test_push_sends_one_multicast_to_exactly_the_agencys_active_tokens(fcm):
    agency, other = AgencyFactory(), AgencyFactory()
    Device.objects.create(agency=agency, token="a1", platform="android")
    Device.objects.create(agency=agency, token="a2", platform="ios")
    Device.objects.create(agency=agency, token="old", platform="ios", is_active=False)
    Device.objects.create(agency=other, token="b1", platform="android")
    notification = make_notification(agency)

    status = push_owed().statuses[notification.pk]

    assert status == PushStatus.SENT
    assert len(fcm) == 1
    assert sorted(fcm[0].tokens) == ["a1", "a2"]
    assert fcm[0].data == {"lead_id": "7", "kind": "lead_offered", "notification_id": str(notification.pk)}
    assert fcm[0].notification.title == "New lead"
    assert fcm[0].android.priority == "high"
    notification.refresh_from_db()
    assert notification.push_status == PushStatus.SENT
    assert notification.pushed_at == NOW


def test_unregistered_and_invalid_tokens_are_deactivated(fcm):
    agency = AgencyFactory()
    for token in ("good", "gone", "bad"):
        Device.objects.create(agency=agency, token=token, platform="android")
    fcm.replies.append(
        {
            "gone": messaging.UnregisteredError("gone"),
            "bad": exceptions.InvalidArgumentError("The registration token is not a valid FCM registration token"),
        }
    )

    make_notification(agency)
    push_owed()

    assert set(Device.objects.filter(is_active=True).values_list("token", flat=True)) == {"good"}
    assert Device.objects.get(token="gone").deactivated_at == NOW


def test_transient_error_puts_the_push_back_and_a_run_comes_back_when_it_is_due(fcm, monkeypatch):
    agency = AgencyFactory()
    Device.objects.create(agency=agency, token="t", platform="android")
    notification = make_notification(agency)
    fcm.replies.append({"t": exceptions.UnavailableError("try later")})
    scheduled = []
    monkeypatch.setattr(push_task, "apply_async", lambda kwargs, countdown=None, **_: scheduled.append(countdown))

    assert push_task.run() == 1

    notification.refresh_from_db()
    assert notification.push_status == PushStatus.PENDING
    assert "UnavailableError" in notification.push_error
    assert scheduled == [5.0 + RETRY_CLOCK_MARGIN_SECONDS]  # the run that comes back for it
    assert push_task.run() == 0  # not due yet: left alone
    its_time_has_come()
    assert push_task.run() == 1  # the retry succeeds
    notification.refresh_from_db()
    assert notification.push_status == PushStatus.SENT
    assert notification.push_attempts == 2


def its_time_has_come():
    """The retries scheduled so far are due."""
    Notification.objects.exclude(next_attempt_at=None).update(next_attempt_at=timezone.now())


def test_a_push_that_keeps_failing_ends_failed_after_the_last_attempt(fcm, settings, monkeypatch):
    settings.PUSH_MAX_ATTEMPTS = 3
    agency = AgencyFactory()
    Device.objects.create(agency=agency, token="t", platform="android")
    notification = make_notification(agency)
    fcm.replies.extend({"t": exceptions.UnavailableError("down")} for _ in range(5))
    scheduled = []
    monkeypatch.setattr(push_task, "apply_async", lambda kwargs, countdown=None, **_: scheduled.append(countdown))

    for _ in range(3):
        push_task.run()
        its_time_has_come()

    notification.refresh_from_db()
    assert notification.push_status == PushStatus.FAILED
    assert notification.push_attempts == 3
    assert scheduled == [5.0 + RETRY_CLOCK_MARGIN_SECONDS, 10.0 + RETRY_CLOCK_MARGIN_SECONDS]
    assert len(fcm) == 3


def test_each_retry_time_gets_a_run_of_its_own(fcm, monkeypatch):
    # A run takes only what is due, so one run at the earliest retry would leave the later
    # ones to the sweeper.
    first_try, third_try = AgencyFactory(), AgencyFactory()
    Device.objects.create(agency=first_try, token="t1", platform="android")
    Device.objects.create(agency=third_try, token="t3", platform="android")
    make_notification(first_try)
    make_notification(third_try, push_attempts=2)
    fcm.replies.extend([{"t1": exceptions.UnavailableError("down")}, {"t3": exceptions.UnavailableError("down")}])
    scheduled = []
    monkeypatch.setattr(push_task, "apply_async", lambda kwargs, countdown=None, **_: scheduled.append(countdown))

    push_task.run()

    assert scheduled == [5.0 + RETRY_CLOCK_MARGIN_SECONDS, 20.0 + RETRY_CLOCK_MARGIN_SECONDS]


def test_the_sweeper_leaves_an_in_flight_push_alone_and_rescues_a_dead_one(
    monkeypatch, django_capture_on_commit_callbacks
):
    agency = AgencyFactory()
    sending = {"push_status": PushStatus.SENDING, "push_attempts": 1}
    in_flight = make_notification(agency, claimed_at=NOW - timedelta(seconds=30), **sending)
    dead = make_notification(agency, claimed_at=NOW - timedelta(minutes=10), **sending)
    waiting = make_notification(agency, push_attempts=1, next_attempt_at=NOW + timedelta(minutes=5))
    make_notification(agency, push_attempts=2, next_attempt_at=NOW - timedelta(minutes=10))  # its run was lost
    Notification.objects.update(created_at=NOW - timedelta(hours=1))
    runs = []
    monkeypatch.setattr(push_task, "apply_async", lambda kwargs, **_options: runs.append(kwargs))

    with django_capture_on_commit_callbacks(execute=True):
        found = notifications.sweep_unpushed_notifications(now=NOW)

    assert found == 2  # the dead attempt and the lost retry
    assert runs == [{}]  # one push run, for all that are owed
    states = dict(Notification.objects.values_list("pk", "push_status"))
    assert states[in_flight.pk] == PushStatus.SENDING
    assert states[dead.pk] == PushStatus.PENDING
    assert states[waiting.pk] == PushStatus.PENDING

    claimed = [claimed.id for claimed in notifications._claim(NOW)]
    assert dead.pk in claimed  # owed again
    assert waiting.pk not in claimed


def test_the_sweeper_queues_nothing_when_no_push_is_overdue(monkeypatch, django_capture_on_commit_callbacks):
    make_notification(AgencyFactory())  # just made: its run is on its way
    runs = []
    monkeypatch.setattr(push_task, "apply_async", lambda kwargs, **_options: runs.append(kwargs))

    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.sweep_unpushed_notifications(now=NOW) == 0

    assert runs == []


def test_claiming_a_push_changes_no_indexed_column():
    # Every push is claimed before it is sent. Where the page has room (as on a test's fresh
    # table) a claim that changes no indexed column is a HOT update: no new index entries.
    notification = make_notification(AgencyFactory())
    hot_before = hot_updates_of_notifications()

    [claimed] = notifications._claim(NOW)

    assert (claimed.id, claimed.attempts) == (notification.pk, 1)
    assert hot_updates_of_notifications() == hot_before + 1


def hot_updates_of_notifications() -> int:
    """HOT updates of the table so far in this transaction (the test's)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_get_xact_tuples_hot_updated(%s::regclass)", [Notification._meta.db_table])
        return cursor.fetchone()[0]


def test_the_sweeper_finds_the_owed_pushes_through_their_index():
    with CaptureQueriesContext(connection) as queries:
        notifications.sweep_unpushed_notifications(now=NOW)

    lookups = [query["sql"] for query in queries if query["sql"].startswith("SELECT")]
    assert len(lookups) == 2  # stuck attempts, lost pushes
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a test's table is small enough to prefer it
        for sql in lookups:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
            assert '"Index Name": "notification_unsettled_idx"' in json.dumps(cursor.fetchone()[0])


def test_a_late_attempt_does_not_overwrite_the_outcome_of_a_newer_one(fcm):
    agency = AgencyFactory()
    Device.objects.create(agency=agency, token="t", platform="android")
    notification = make_notification(agency)
    [stale] = notifications._claim(NOW)
    Notification.objects.filter(pk=notification.pk).update(push_status=PushStatus.SENT, push_attempts=2)

    notifications._record([(stale, PushStatus.FAILED, "late")], NOW)

    notification.refresh_from_db()
    assert notification.push_status == PushStatus.SENT


def test_a_second_run_pushes_nothing_twice(fcm):
    agency = AgencyFactory()
    Device.objects.create(agency=agency, token="t", platform="android")
    notification = make_notification(agency)

    push_task.run()
    push_task.run(notification_ids=[notification.pk])  # as a task queued before push runs

    assert len(fcm) == 1


@pytest.mark.django_db(transaction=True)
def test_a_notification_another_run_is_claiming_is_skipped_not_waited_for(fcm):
    agency = AgencyFactory()
    busy, free = make_notification(agency), make_notification(agency)
    locked, release = threading.Event(), threading.Event()

    def other_run_claiming():  # holds the row lock a concurrent claim would hold
        try:
            with transaction.atomic():
                Notification.objects.select_for_update().get(pk=busy.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_run_claiming)
    thread.start()
    try:
        assert locked.wait(10)
        results = push_owed()
    finally:
        release.set()
        thread.join()

    assert results.statuses == {free.pk: PushStatus.NO_DEVICES}
    assert Notification.objects.get(pk=busy.pk).push_status == PushStatus.PENDING


def test_pushes_have_a_queue_of_their_own_and_distribution_keeps_the_default_one():
    from leadmarket.celery import app

    def queue(task_name):
        return app.amqp.router.route({}, task_name)["queue"].name

    assert queue("agencies.tasks.push_notifications") == "push"
    assert queue("leads.tasks.distribute_new_leads") == app.conf.task_default_queue == "celery"


def test_no_devices_is_recorded_without_calling_fcm(fcm):
    notification = make_notification(AgencyFactory())

    results = push_owed()

    assert results.statuses == {notification.pk: PushStatus.NO_DEVICES}
    assert fcm == []


def test_logging_backend_without_credentials(settings, caplog):
    settings.FCM_CREDENTIALS_FILE = ""
    push._backend_for.cache_clear()
    agency = AgencyFactory()
    Device.objects.create(agency=agency, token="t", platform="android")

    notification = make_notification(agency)
    status = push_owed().statuses[notification.pk]

    assert status == PushStatus.SENT
    assert "logging backend" in caplog.text


def test_notify_queues_a_push_run_only_after_commit(django_capture_on_commit_callbacks, monkeypatch, settings):
    agency = AgencyFactory()
    runs = []
    monkeypatch.setattr(push_task, "apply_async", lambda kwargs, countdown=None, **_: runs.append(countdown))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        notifications.notify(
            agency_id=agency.pk, kind=NotificationKind.LEAD_OFFERED, title="t", body="b", data={"lead_id": 1}, now=NOW
        )
        assert runs == []

    assert len(callbacks) == 1
    assert runs == [settings.PUSH_DELAY_SECONDS]


def test_notifications_made_while_a_run_is_queued_go_out_with_it(django_capture_on_commit_callbacks, monkeypatch):
    agency = AgencyFactory()
    runs = []
    monkeypatch.setattr(push_task, "apply_async", lambda kwargs, countdown=None, **_: runs.append(countdown))
    event = {"agency_id": agency.pk, "kind": NotificationKind.LEAD_OFFERED, "title": "t", "body": "b", "data": {}}

    for _ in range(3):  # three distribution runs' notifications
        with django_capture_on_commit_callbacks(execute=True):
            notifications.notify_many([event], now=NOW)
    assert len(runs) == 1
    assert len(push_owed(requested=True).statuses) == 3  # the queued run starts: it takes all three
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify_many([event], now=NOW)

    assert len(runs) == 2  # made after the run started: a run of its own


@pytest.mark.django_db(transaction=True)
def test_notify_in_a_rolled_back_transaction_enqueues_nothing(monkeypatch):
    agency = AgencyFactory()
    enqueued = []
    monkeypatch.setattr(push_task, "apply_async", lambda kwargs, **_options: enqueued.append(kwargs))

    def offer_that_fails():
        with transaction.atomic():
            notifications.notify(
                agency_id=agency.pk, kind=NotificationKind.LEAD_OFFERED, title="t", body="b", data={}, now=NOW
            )
            raise RuntimeError("the offer failed")

    with pytest.raises(RuntimeError):
        offer_that_fails()

    assert enqueued == []
    assert not Notification.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_enqueue_failure_keeps_the_notification_for_the_sweeper(monkeypatch):
    agency = AgencyFactory()

    def broker_down(kwargs, **_options):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(push_task, "apply_async", broker_down)
    with transaction.atomic():
        notification = notifications.notify(
            agency_id=agency.pk,
            kind=NotificationKind.LEAD_OFFERED,
            title="t",
            body="b",
            data={},
            now=NOW - timedelta(minutes=5),
        )
    runs = []
    monkeypatch.setattr(push_task, "apply_async", lambda kwargs, **_options: runs.append(kwargs))

    assert notifications.sweep_unpushed_notifications(now=NOW) == 1
    assert runs == [{}]
    assert [claimed.id for claimed in notifications._claim(NOW)] == [notification.pk]


def test_only_the_requested_run_clears_the_flag(django_capture_on_commit_callbacks, monkeypatch):
    agency = AgencyFactory()
    runs = []
    monkeypatch.setattr(push_task, "apply_async", lambda kwargs, **_options: runs.append(kwargs))
    event = {"agency_id": agency.pk, "kind": NotificationKind.LEAD_OFFERED, "title": "t", "body": "b", "data": {}}
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify_many([event], now=NOW)
    assert runs == [{"requested": True}]

    push_owed()  # another batch's run, a retry's or the sweeper's, while the requested one waits
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify_many([event], now=NOW)

    assert runs == [{"requested": True}]  # still queued: it takes this one too


def test_a_failed_enqueue_leaves_no_flag_behind(monkeypatch, django_capture_on_commit_callbacks):
    agency = AgencyFactory()
    event = {"agency_id": agency.pk, "kind": NotificationKind.LEAD_OFFERED, "title": "t", "body": "b", "data": {}}
    monkeypatch.setattr(push_task, "apply_async", Mock(side_effect=ConnectionError("redis is down")))
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify_many([event], now=NOW)
    runs = []
    monkeypatch.setattr(push_task, "apply_async", lambda kwargs, **_options: runs.append(kwargs))

    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify_many([event], now=NOW)

    assert runs == [{"requested": True}]  # the next notification queues the run the first could not


def test_dedupe_key_notifies_once():
    agency = AgencyFactory()

    first = notifications.notify(
        agency_id=agency.pk,
        kind=NotificationKind.OFFER_EXPIRING,
        title="t",
        body="b",
        data={},
        now=NOW,
        dedupe_key="offer-expiring:1",
    )
    second = notifications.notify(
        agency_id=agency.pk,
        kind=NotificationKind.OFFER_EXPIRING,
        title="t",
        body="b",
        data={},
        now=NOW,
        dedupe_key="offer-expiring:1",
    )

    assert first is not None
    assert second is None
    assert Notification.objects.count() == 1


# --- API ----------------------------------------------------------------------------------

DEVICES = "/api/mobile/devices"
INBOX = "/api/mobile/notifications"


def test_register_device_and_re_register_moves_it(agency_client, agency):
    other = AgencyFactory()
    Device.objects.create(agency=other, token="shared-token", platform="android", is_active=False)

    response = agency_client.post(DEVICES, {"token": "shared-token", "platform": "ios"})

    assert response.status_code == 201
    device = Device.objects.get(token="shared-token")
    assert device.agency == agency
    assert device.platform == "ios"
    assert device.is_active


def test_register_device_rejects_bad_platform(agency_client):
    response = agency_client.post(DEVICES, {"token": "t", "platform": "blackberry"})

    assert response.status_code == 400
    assert "platform" in response.json()["errors"]


def test_delete_device_only_for_the_owner(agency_client, agency):
    Device.objects.create(agency=AgencyFactory(), token="theirs", platform="android")
    Device.objects.create(agency=agency, token="mine", platform="android")

    assert agency_client.delete(f"{DEVICES}/theirs").status_code == 404
    assert agency_client.delete(f"{DEVICES}/mine").status_code == 200
    assert list(Device.objects.values_list("token", flat=True)) == ["theirs"]


def test_inbox_lists_newest_first_with_unread_count_and_filter(agency_client, agency):
    old = make_notification(agency)
    new = Notification.objects.create(
        agency=agency,
        kind=NotificationKind.PAYMENT_DUE,
        title="Pay",
        body="b",
        created_at=NOW + timedelta(minutes=1),
        read_at=NOW,
    )
    make_notification(AgencyFactory())

    everything = agency_client.get(INBOX).json()["data"]
    unread = agency_client.get(INBOX, {"unread": "true"}).json()["data"]

    assert [row["id"] for row in everything["results"]] == [new.pk, old.pk]
    assert everything["unread_count"] == 1
    assert [row["id"] for row in unread["results"]] == [old.pk]


def test_mark_read_and_read_all(agency_client, agency):
    first, second = make_notification(agency), make_notification(agency)

    one = agency_client.put(f"{INBOX}/{first.pk}/read")
    rest = agency_client.put(f"{INBOX}/read-all")

    assert one.status_code == 200
    assert one.json()["data"]["is_read"] is True
    assert rest.json()["data"] == {"marked_read": 1}
    second.refresh_from_db()
    assert second.read_at is not None


def test_another_agencys_notification_is_404_and_unchanged(agency_client):
    theirs = make_notification(AgencyFactory())

    assert agency_client.put(f"{INBOX}/{theirs.pk}/read").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_inbox_query_count_does_not_grow(agency_client, agency):
    make_notification(agency)
    with CaptureQueriesContext(connection) as few:
        agency_client.get(INBOX)
    for _ in range(15):
        make_notification(agency)

    with CaptureQueriesContext(connection) as many:
        agency_client.get(INBOX)

    assert len(many) == len(few)


def test_inbox_rejects_a_malformed_unread_filter(agency_client):
    response = agency_client.get(INBOX, {"unread": "maybe"})

    assert response.status_code == 400
    assert "unread" in response.json()["errors"]


def test_a_message_fcm_refuses_fails_without_retries_and_keeps_the_tokens(fcm):
    agency = AgencyFactory()
    Device.objects.create(agency=agency, token="t", platform="android")
    fcm.replies.append({"t": exceptions.InvalidArgumentError("Invalid JSON payload received.")})

    notification = make_notification(agency)
    status = push_owed().statuses[notification.pk]

    assert status == PushStatus.FAILED
    assert Device.objects.get(token="t").is_active


def test_a_batch_is_claimed_at_once_and_each_gets_its_own_outcome(fcm, django_assert_max_num_queries, monkeypatch):
    with_devices = []
    for token in ("ok", "flaky", "refused"):
        agency = AgencyFactory()
        Device.objects.create(agency=agency, token=token, platform="android")
        with_devices.append(make_notification(agency))
    without = [make_notification(AgencyFactory()) for _ in range(5)]
    pushed_already = make_notification(AgencyFactory(), push_status=PushStatus.SENT)
    fcm.replies.extend(
        [
            {},
            {"flaky": exceptions.UnavailableError("later")},
            {"refused": exceptions.InvalidArgumentError("Invalid JSON")},
        ]
    )

    # The claim (one UPDATE), the devices, one update per kind of outcome (4): not a round
    # of queries per notification, and no transaction statements.
    with django_assert_max_num_queries(6):
        results = push_owed()

    ok, flaky, refused = (n.pk for n in with_devices)
    assert results.statuses == {
        ok: PushStatus.SENT,
        flaky: PushStatus.PENDING,
        refused: PushStatus.FAILED,
        **{n.pk: PushStatus.NO_DEVICES for n in without},
    }
    assert results.retry_after == {flaky: timedelta(seconds=5)}
    states = dict(Notification.objects.values_list("pk", "push_status"))
    assert states == {**results.statuses, pushed_already.pk: PushStatus.SENT}
    assert Notification.objects.get(pk=flaky).next_attempt_at == NOW + timedelta(seconds=5)


@pytest.mark.parametrize("in_process", [False, True])
def test_a_large_batch_goes_out_in_batches_on_as_many_workers_as_there_are(monkeypatch, in_process):
    monkeypatch.setitem(push_task.app.conf, "task_always_eager", in_process)
    runs, settled_when_queued = [], []

    def queue_run(kwargs, **_options):
        runs.append(kwargs)
        settled_when_queued.append(Notification.objects.exclude(pushed_at=None).count())

    monkeypatch.setattr(push_task, "apply_async", queue_run)
    agency = AgencyFactory()
    event = {"agency_id": agency.pk, "kind": NotificationKind.LEAD_OFFERED, "title": "t", "body": "b", "data": {}}
    notifications.notify_many([event] * 250, now=NOW)

    pushed = []
    while len(pushed) == len(runs):  # each run queued by a full batch, in turn
        pushed.append(len(push_owed().statuses))

    if in_process:
        assert pushed == [250]  # one run takes the batches in turn
        assert runs == []
    else:
        assert pushed == [100, 100, 50]
        assert runs == [{}, {}]
        assert settled_when_queued == [0, 100]  # each full batch queued the next run before it sent
    assert not Notification.objects.filter(push_status=PushStatus.PENDING).exists()
