import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadmarket.settings")
application = get_wsgi_application()


def warm_up() -> None:
    """Loads what requests would otherwise load lazily, before the process takes traffic:
    the ZIP code dataset (~1.3 s) and the URLconf with every view module. Without it each new
    or recycled worker (gunicorn's max_requests) answered its first requests seconds late.

    Then moves everything loaded out of the garbage collector's reach (`gc.freeze`): it lives
    as long as the process, yet every full collection walked it, the ZIP dataset above all
    (~350,000 objects): a pause of ~0.4 s about every thousand webhooks on the bench host."""
    from django.urls import get_resolver

    from leadmarket import zipcodes

    get_resolver().url_patterns  # noqa: B018 (the property imports the URLconf)
    zipcodes.lookup_zip("10001")
    gc.collect()  # start-up's garbage is not pinned with the rest
    gc.freeze()


warm_up()
