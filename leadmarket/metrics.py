"""Prometheus metrics beyond what django-prometheus records (HTTP by route and status,
latency, database queries): the marketplace's own counters, and Celery task outcomes.

With several gunicorn workers, set PROMETHEUS_MULTIPROC_DIR so every process's samples
are collected into one /metrics answer.
"""

import ipaddress
import os
import time

from celery import signals
from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse
from django.utils.crypto import constant_time_compare
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from leadmarket.api.client import client_ip
from leadmarket.api.envelope import failure_response

webhook_receptions = Counter(
    "leadmarket_webhook_receptions_total", "Webhook receptions by portal and outcome", ["portal", "outcome"]
)
offers = Counter(
    "leadmarket_offers_total",
    "Offers made (offered) and their ends (accepted, rejected, expired, withdrawn)",
    ["outcome"],
)
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


class LeadsByStatusCollector:
    """`leadmarket_leads` by status, read from the database at scrape time (at most every
    LEADS_GAUGE_SECONDS, so a busy scraper costs one grouped count per interval)."""

    def __init__(self, every_seconds: float = 30):
        self.every_seconds = every_seconds
        self._cached: tuple[float, list[tuple[str, int]]] = (0.0, [])

    def collect(self):
        from leads.models import Lead

        read_at, counts = self._cached
        if time.monotonic() - read_at > self.every_seconds:
            counts = list(Lead.objects.values_list("status").annotate(n=Count("id")).order_by("status"))
            self._cached = (time.monotonic(), counts)
        gauge = GaugeMetricFamily("leadmarket_leads", "Leads by current status", labels=["status"])
        for status, count in counts:
            gauge.add_metric([status], count)
        yield gauge


leads_by_status = LeadsByStatusCollector()


def metrics_view(request):
    """/metrics for Prometheus: with METRICS_TOKEN set, a bearer token; otherwise internal addresses.

    With PROMETHEUS_MULTIPROC_DIR set, the samples of every worker process are merged.
    """
    if not _allowed(request):
        return failure_response(403, "Metrics are not available from here.")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_ProcessRegistry())
    registry.register(leads_by_status)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class _ProcessRegistry:
    """This process's default registry, as one collector of another registry."""

    def collect(self):
        yield from REGISTRY.collect()


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
