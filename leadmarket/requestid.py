"""Request ids: taken from or set into X-Request-ID, put on every log record, and carried
into the Celery tasks a request enqueues so one id follows a lead from webhook to push.
"""

import contextvars
import logging
import re
import uuid

from celery import signals

HEADER = "X-Request-ID"
TASK_HEADER = "request_id"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(HEADER, "")
        request_id = incoming if _VALID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        # Not reset afterwards: Django logs the response (e.g. "Not Found") after the
        # middleware returns, and that line must carry the id too. The next request sets its own.
        current_request_id.set(request_id)
        response = self.get_response(request)
        response[HEADER] = request_id
        return response


def install_log_record_factory() -> None:
    """Every log record created from now on carries the current `request_id`."""
    base_factory = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = base_factory(*args, **kwargs)
        record.request_id = current_request_id.get()
        return record

    logging.setLogRecordFactory(factory)


class RequestIdFilter(logging.Filter):
    """Guarantees `request_id` for the formatters, also on records made before start-up ended."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True


@signals.before_task_publish.connect
def _attach_request_id(headers=None, **kwargs):
    request_id = current_request_id.get()
    if headers is not None and request_id != "-":
        headers.setdefault(TASK_HEADER, request_id)


@signals.task_prerun.connect
def _restore_request_id(task=None, **kwargs):
    if task is None:
        return
    request_id = getattr(task.request, TASK_HEADER, None) or (task.request.headers or {}).get(TASK_HEADER)
    if not request_id:  # an eager task runs inside its request; a beat task starts a new id
        current = current_request_id.get()
        request_id = current if current != "-" else uuid.uuid4().hex
    task.request._leadmarket_request_id_token = current_request_id.set(request_id)


@signals.task_postrun.connect
def _clear_request_id(task=None, **kwargs):
    token = getattr(task.request, "_leadmarket_request_id_token", None) if task else None
    if token is not None:
        current_request_id.reset(token)
