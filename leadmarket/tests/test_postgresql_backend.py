"""leadmarket.postgresql: a reused connection is health-checked only after it sat idle."""

from unittest import mock

import pytest
from django.db import OperationalError, connection, connections

from leadmarket.postgresql.base import HEALTH_CHECK_AFTER_IDLE_SECONDS

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit, as under gunicorn


@pytest.fixture
def wrapper():
    """A second connection to the test database, configured as the default one is, so a
    test can end its "requests" and break it without touching the test's own connection."""
    wrapper = connections.create_connection("default")
    yield wrapper
    wrapper.close()


def backend_pid(wrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])  # waits until it is gone


def test_a_connection_a_request_used_a_moment_ago_is_reused_without_a_check(wrapper):
    pid = backend_pid(wrapper)
    wrapper.close_if_unusable_or_obsolete()  # the request ends; the connection persists

    with mock.patch.object(wrapper, "is_usable", wraps=wrapper.is_usable) as health_check:
        assert backend_pid(wrapper) == pid

    assert health_check.call_count == 0  # Django's own backend sends SELECT 1 here


def test_a_connection_idle_past_the_window_is_checked_and_a_dead_one_replaced(wrapper):
    pid = backend_pid(wrapper)
    wrapper.close_if_unusable_or_obsolete()
    terminate(pid)  # a server restart, an idle timeout...
    wrapper.idle_since -= HEALTH_CHECK_AFTER_IDLE_SECONDS  # ...while it sat unused

    with mock.patch.object(wrapper, "is_usable", wraps=wrapper.is_usable) as health_check:
        new_pid = backend_pid(wrapper)  # the next request does not fail

    assert health_check.call_count == 1
    assert new_pid != pid


def test_a_connection_broken_within_the_window_fails_one_request_and_is_then_replaced(wrapper):
    pid = backend_pid(wrapper)
    wrapper.close_if_unusable_or_obsolete()
    terminate(pid)

    with pytest.raises(OperationalError):
        backend_pid(wrapper)
    wrapper.close_if_unusable_or_obsolete()  # that request's end closes it (errors_occurred)

    assert backend_pid(wrapper) != pid
