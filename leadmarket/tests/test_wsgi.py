"""What a web or worker process does once, before it takes work."""

import gc
import weakref

import pytest
from celery import signals

import leadmarket.celery
import leadmarket.wsgi
from leadmarket import zipcodes


@pytest.fixture(autouse=True)
def _unfrozen():
    """Importing leadmarket.wsgi froze this test process's heap: each test starts and ends
    with nothing frozen."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_the_wsgi_module_loads_the_zip_codes_before_the_first_request():
    zipcodes._index.cache_clear()

    leadmarket.wsgi.warm_up()

    assert zipcodes._index.cache_info().currsize == 1


def test_what_the_warm_up_loaded_is_out_of_the_collectors_reach():
    zipcodes._index.cache_clear()
    gc.freeze()
    before = gc.get_freeze_count()

    leadmarket.wsgi.warm_up()

    assert gc.get_freeze_count() - before > 30_000  # the ZIP code index it built (~41,000 entries)


def test_a_worker_pool_process_freezes_what_it_inherited():
    connected = [
        ref() if isinstance(ref, weakref.ReferenceType) else ref for _, ref in signals.worker_process_init.receivers
    ]
    assert leadmarket.celery._freeze_loaded_objects in connected

    leadmarket.celery._freeze_loaded_objects()

    assert gc.get_freeze_count() > 0
