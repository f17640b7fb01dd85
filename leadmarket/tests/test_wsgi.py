"""What a web or worker process does once, before it takes work."""

import gc

from leadmarket import zipcodes


def test_the_wsgi_module_loads_the_zip_codes_before_the_first_request():
    zipcodes._index.cache_clear()

    import leadmarket.wsgi

    leadmarket.wsgi.warm_up()

    assert zipcodes._index.cache_info().currsize == 1


def test_what_the_wsgi_module_loaded_is_out_of_the_collectors_reach():
    import leadmarket.wsgi

    gc.unfreeze()
    try:
        leadmarket.wsgi.warm_up()
        assert gc.get_freeze_count() > 100_000  # the ZIP dataset at least
        gc.collect(2)
        assert gc.get_freeze_count() > 100_000  # a full collection leaves them frozen
    finally:
        gc.unfreeze()


def test_a_worker_pool_process_freezes_what_it_inherited():
    from celery import signals

    import leadmarket.celery  # noqa: F401 (connects the handler)

    gc.unfreeze()
    try:
        signals.worker_process_init.send(sender=None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
