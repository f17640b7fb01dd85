import gc
import logging
import os
from functools import partial

from celery import Celery, signals
from django.db import close_old_connections, transaction

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
    transaction.on_commit(partial(try_enqueue, task, **kwargs))


@signals.task_prerun.connect
@signals.task_postrun.connect
def _reuse_database_connections(task=None, **kwargs):
    """Around a task, what Django does around a request: connections past CONN_MAX_AGE or
    broken by an error are closed, the others kept (and health-checked on first use).
    Celery's fixup would close them all (see CELERY_DB_REUSE_MAX). Not for a task run in
    the caller's process (eager), which must keep the caller's connection and transaction."""
    if task is not None and not task.request.is_eager:
        close_old_connections()


@signals.worker_process_init.connect
def _freeze_loaded_objects(**kwargs):
    """A pool process keeps what it inherited (Django, the task modules) until it exits: out of
    the garbage collector's reach, its full collections walk only what tasks allocate (as in
    the web processes: leadmarket.wsgi.warm_up)."""
    gc.collect()
    gc.freeze()
