import logging
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadmarket.settings")

logger = logging.getLogger(__name__)

app = Celery("leadmarket")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def enqueue_on_commit(task, **kwargs) -> None:
    """Sends `task` with keyword arguments once the current transaction commits.

    A broker that is down never fails the request or rolls back what it committed: the
    error is logged, and the periodic sweeper that owns this kind of work (a status
    column it scans) picks the row up later.
    """
    from django.db import transaction

    def send():
        try:
            task.apply_async(kwargs=kwargs)
        except Exception:
            logger.exception("could not enqueue %s%s; the sweeper will pick it up", task.name, kwargs)

    transaction.on_commit(send)
