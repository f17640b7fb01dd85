import logging
import os
from functools import partial

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadmarket.settings")

logger = logging.getLogger(__name__)

app = Celery("leadmarket")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def try_enqueue(task, *, countdown: float | None = None, **kwargs) -> bool:
    """Sends `task` (to run `countdown` seconds from now, if given); False (logged, never
    raised) when the broker is down.

    No publish retries: a request must not hang on a dead broker, and every kind of work
    sent this way has a periodic sweeper that scans a status column and sends it again.
    """
    try:
        task.apply_async(kwargs=kwargs, countdown=countdown, retry=False)
    except Exception:
        logger.warning("could not enqueue %s%s; the sweeper will pick it up", task.name, kwargs, exc_info=True)
        return False
    return True


def enqueue_on_commit(task, **kwargs) -> None:
    """Sends `task` once the current transaction commits (see `try_enqueue`): a broker that is
    down never fails the request or rolls back what it committed."""
    from django.db import transaction

    transaction.on_commit(partial(try_enqueue, task, **kwargs))
