"""leadmarket.postgresql: a reused connection is health-checked only after it sat idle."""

from unittest import mock

import pytest
from django.db import OperationalError, connection, connections

from leadmarket.postgresql import base

pytestmark = pytest.mark.django_db


@pytest.fixture
def wrapper():
    """A second connection to the test database, configured as the default one is, so a
    test can end its "requests" and break it without touching the test's own connection."""
    wrapper = connections.create_connection("default")
    yield wrapper
    wrapper.close()


@pytest.fixture
def window(monkeypatch):
    """Sets the idle window, so that no test depends on how fast this machine is."""
    return lambda seconds: monkeypatch.setattr(base, "HEALTH_CHECK_AFTER_IDLE_SECONDS", seconds)


def backend_pid(wrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def between_requests(wrapper) -> None:
    """What Django does with a persistent connection as a request ends and the next starts."""
    wrapper.close_if_unusable_or_obsolete()  # request_finished: close_old_connections
    wrapper.close_if_unusable_or_obsolete()  # request_started: the same


def terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])  # waits until it is gone


def test_a_connection_a_request_used_within_the_window_is_reused_without_a_check(wrapper, window):
    window(3600)
    pid = backend_pid(wrapper)
    between_requests(wrapper)

    with mock.patch.object(wrapper, "is_usable", wraps=wrapper.is_usable) as health_check:
        assert backend_pid(wrapper) == pid

    assert health_check.call_count == 0  # Django's own backend sends SELECT 1 here


def test_a_connection_idle_past_the_window_is_checked_and_a_dead_one_replaced(wrapper, window):
    window(0)
    pid = backend_pid(wrapper)
    between_requests(wrapper)
    terminate(pid)  # a server restart, an idle timeout... while it sat unused

    with mock.patch.object(wrapper, "is_usable", wraps=wrapper.is_usable) as health_check:
        new_pid = backend_pid(wrapper)  # the next request does not fail

    assert health_check.call_count == 1
    assert new_pid != pid


def test_requests_that_leave_the_connection_unused_do_not_make_it_look_fresh(wrapper, window):
    window(3600)
    backend_pid(wrapper)
    between_requests(wrapper)
    wrapper.last_used -= 7200  # two hours ago...
    between_requests(wrapper)  # ...and since then requests that made no query

    with mock.patch.object(wrapper, "is_usable", wraps=wrapper.is_usable) as health_check:
        backend_pid(wrapper)

    assert health_check.call_count == 1


def test_a_connection_broken_within_the_window_fails_one_request_and_is_then_replaced(wrapper, window):
    window(3600)
    pid = backend_pid(wrapper)
    between_requests(wrapper)
    terminate(pid)

    with pytest.raises(OperationalError):
        backend_pid(wrapper)
    between_requests(wrapper)  # that request's end closes it (errors_occurred)

    assert backend_pid(wrapper) != pid
