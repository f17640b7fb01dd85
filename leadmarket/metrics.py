"""Prometheus metrics beyond what django-prometheus records (HTTP by route and status,
latency, database queries): the marketplace's own counters, and Celery task outcomes.

With several gunicorn workers, set PROMETHEUS_MULTIPROC_DIR so every process's samples
are collected into one /metrics answer.
"""

import ipaddress
import time

from celery import signals
from django.conf import settings
from django.utils.crypto import constant_time_compare
from django_prometheus.exports import ExportToDjangoView
from prometheus_client import Counter, Histogram

from leadmarket.api.client import client_ip
from leadmarket.api.envelope import failure_response

webhook_receptions = Counter(
    "leadmarket_webhook_receptions_total", "Webhook receptions by portal and outcome", ["portal", "outcome"]
)
leads_stored = Counter("leadmarket_leads_total", "Leads stored, by the status they were stored with", ["status"])
offers_resolved = Counter("leadmarket_offers_total", "Offers by outcome", ["outcome"])
time_to_accept = Histogram(
    "leadmarket_offer_time_to_accept_seconds",
    "Seconds from offer to acceptance",
    buckets=(15, 30, 60, 120, 300, 600, 900, 1800, 3600),
)
celery_tasks = Counter("leadmarket_celery_tasks_total", "Celery tasks by name and outcome", ["task", "outcome"])
celery_task_seconds = Histogram("leadmarket_celery_task_seconds", "Celery task run time", ["task"])


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return constant_time_compare(supplied, token)
    address = client_ip(request)
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network) for network in settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request):
    """/metrics for Prometheus: with METRICS_TOKEN set, a bearer token; otherwise internal addresses."""
    if not _allowed(request):
        return failure_response(403, "Metrics are not available from here.")
    return ExportToDjangoView(request)


@signals.task_prerun.connect
def _task_started(task=None, **kwargs):
    if task is not None:
        task.request._leadmarket_started = time.perf_counter()


@signals.task_postrun.connect
def _task_finished(task=None, state=None, **kwargs):
    if task is None:
        return
    started = getattr(task.request, "_leadmarket_started", None)
    if started is not None:
        celery_task_seconds.labels(task.name).observe(time.perf_counter() - started)
    celery_tasks.labels(task.name, (state or "unknown").lower()).inc()
