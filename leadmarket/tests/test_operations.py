"""Operability: schema, health, metrics, security headers, CORS, rate limits, request ids."""

import logging
import subprocess
import sys

import pytest
from django.db.utils import ConnectionHandler
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from leadmarket import health
from leads.tests.factories import distribute_lead

pytestmark = pytest.mark.django_db

NOT_IN_SCHEMA = {"/api/schema", "/api/docs", "/api/redoc"}


def api_routes(patterns=None, prefix: str = "") -> set[str]:
    """Every concrete route under /api/, as the schema spells it (`{param}`, no trailing slash)."""
    routes = set()
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes |= api_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/") and not route.endswith("/"):
            if "^" in route:  # the catch-all enveloped 404
                continue
            path = "/" + route
            for converter in ("int:", "str:", "uuid:", "slug:", "path:"):
                path = path.replace("<" + converter, "<")
            # DRF's schema convention names a `pk` path parameter `id`
            routes.add(path.replace("<pk>", "<id>").replace("<", "{").replace(">", "}"))
    return routes - NOT_IN_SCHEMA


def test_schema_is_valid_and_lists_every_api_route():
    schema = SchemaGenerator().get_schema(request=None, public=True)

    validate_schema(schema)
    assert api_routes() - set(schema["paths"]) == set()


def test_schema_wraps_responses_in_the_envelope_and_documents_errors():
    schema = SchemaGenerator().get_schema(request=None, public=True)

    login = schema["paths"]["/api/v1/agencies/login"]["post"]["responses"]
    assert login["200"]["content"]["application/json"]["schema"]["required"] == [
        "success",
        "message",
        "data",
        "timestamp",
    ]
    assert {"400", "401", "413", "415", "429"} <= set(login)
    me = schema["paths"]["/api/admin/auth/me"]["get"]["responses"]
    assert {"401", "403"} <= set(me)
    assert me["403"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}


def test_spectacular_validate_fail_on_warn_is_clean():
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr


def test_docs_pages_are_served_without_external_assets(client):
    for page in ("/api/docs/", "/api/redoc/"):
        response = client.get(page)
        html = response.content.decode()
        assert response.status_code == 200
        assert "https://" not in html
        assert "http://" not in html


def test_liveness(client):
    response = client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_reports_each_check(client):
    body = client.get("/health/ready").json()

    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "migrations", "redis"}


def test_readiness_is_503_when_the_database_is_unreachable(client, monkeypatch, settings):
    unreachable = dict(settings.DATABASES["default"], HOST="127.0.0.1", PORT=1, NAME="nowhere")
    unreachable["OPTIONS"] = {"connect_timeout": 2}
    monkeypatch.setattr(health, "connections", ConnectionHandler({"default": unreachable}))

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["database"]["status"] == "error"


def test_readiness_is_503_when_redis_is_unreachable(client, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["status"] == "error"
    assert response.json()["checks"]["database"]["status"] == "ok"


def test_metrics_need_an_internal_address_or_the_token(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403

    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")

    assert response.status_code == 200
    assert "django_http_requests_total_by_method" in response.content.decode()


def test_metrics_count_requests_by_route_and_status(client, agency_client):
    agency_client.get("/api/v1/agencies/profile")

    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()

    assert 'view="agency-profile"' in text
    assert "django_db_execute_total" in text


PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "x" * 60 + "production-like-secret-for-the-check",
    "ALLOWED_HOSTS": "api.example.com",
}


def test_check_deploy_is_clean_under_production_settings():
    import os

    env = {**os.environ, **PRODUCTION_ENV}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("log_level", "task_lines"), [("INFO", "INFO"), ("WARNING", "WARNING")])
def test_a_workers_line_per_task_follows_log_level(log_level, task_lines):
    import os

    env = {**os.environ, **PRODUCTION_ENV, "REDIS_URL": "redis://127.0.0.1:6379/0", "LOG_LEVEL": log_level}
    script = "from django.conf import settings; print(settings.LOGGING['loggers']['celery.app.trace']['level'])"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )

    assert result.stdout.split()[-1] == task_lines, result.stderr


def test_security_headers_on_responses(client, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    response = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")

    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_cors_allows_listed_origins_only(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://admin.example.com"]

    listed = client.options(
        "/api/admin/auth/login", HTTP_ORIGIN="https://admin.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    unlisted = client.options(
        "/api/admin/auth/login", HTTP_ORIGIN="https://evil.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )

    assert listed["Access-Control-Allow-Origin"] == "https://admin.example.com"
    assert "Access-Control-Allow-Origin" not in unlisted


def test_general_api_rate_limit_answers_429_with_retry_after(agency_client, settings):
    settings.API_RATE_LIMIT = "3/m"
    for _ in range(3):
        assert agency_client.get("/api/v1/agencies/profile").status_code == 200

    response = agency_client.get("/api/v1/agencies/profile")

    assert response.status_code == 429
    assert response.json()["success"] is False
    assert 1 <= int(response["Retry-After"]) <= 60


def test_registration_is_rate_limited_per_address(api_client, settings):
    settings.REGISTRATION_RATE_LIMIT = "2/h"
    for n in range(2):
        api_client.post(
            "/api/v1/agencies/register", {"email": f"r{n}@example.com", "password": "x" * 12, "business_name": "R"}
        )

    response = api_client.post(
        "/api/v1/agencies/register", {"email": "r9@example.com", "password": "x" * 12, "business_name": "R"}
    )

    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1


def test_rate_limits_fail_open_without_a_500_when_redis_is_down(agency_client, api_client, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    settings.API_RATE_LIMIT = "1/m"

    for _ in range(3):
        assert agency_client.get("/api/v1/agencies/profile").status_code == 200
    login = api_client.post("/api/v1/agencies/login", {"email": "x@example.com", "password": "wrong-password"})

    assert login.status_code == 401


def test_request_id_is_echoed_or_created_and_logged(agency_client, caplog):
    with caplog.at_level(logging.INFO):
        echoed = agency_client.get("/api/v1/agencies/nowhere", HTTP_X_REQUEST_ID="abc-123")
        created = agency_client.get("/api/v1/agencies/profile")

    assert echoed["X-Request-ID"] == "abc-123"
    assert len(created["X-Request-ID"]) == 32
    assert any(getattr(record, "request_id", None) == "abc-123" for record in caplog.records)


def test_unsafe_request_id_is_replaced(agency_client):
    response = agency_client.get("/api/v1/agencies/profile", HTTP_X_REQUEST_ID="bad id\nwith newline")

    assert response["X-Request-ID"] != "bad id\nwith newline"


def scrape(client) -> str:
    return client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()


def sample(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_webhook_receptions_by_portal_and_outcome(client, api_client):
    from leadmarket import metrics
    from leads.models import Lead, LeadStatus
    from leads.tests.factories import subscribed_agency
    from portals.tests.factories import make_portal

    _, key = make_portal("metered")
    subscribed_agency("10001")
    metrics.leads_by_status.every_seconds = 0
    before = scrape(client)

    api_client.post("/api/webhooks/metered", {"email": "m@example.com", "zipcode": "10001"}, HTTP_X_API_KEY=key)
    api_client.post("/api/webhooks/metered", {"email": "m2@example.com", "zipcode": "10001"}, HTTP_X_API_KEY="bad")
    api_client.post("/api/webhooks/nosuchportal", {"email": "x@example.com", "zipcode": "10001"})
    after = scrape(client)

    def delta(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("leadmarket_webhook_receptions_total", portal="metered", outcome="accepted") == 1
    assert delta("leadmarket_webhook_receptions_total", portal="metered", outcome="unauthorized") == 1
    assert delta("leadmarket_webhook_receptions_total", portal="unknown", outcome="not_found") == 1
    assert sample(after, "leadmarket_leads", status=Lead.objects.get().status) == 1
    assert Lead.objects.get().status == LeadStatus.NEW  # handed off after commit, to a worker


def test_metrics_count_offers_and_time_to_accept(client, django_capture_on_commit_callbacks):
    from django.utils import timezone

    from leads import distribution
    from leads.tests.factories import LeadFactory, subscribed_agency

    agency = subscribed_agency("10001")
    lead = LeadFactory()
    before = scrape(client)

    with django_capture_on_commit_callbacks(execute=True):
        distribute_lead(lead_id=lead.pk, now=timezone.now())
        distribution.accept_offer(agency=agency, lead_id=lead.pk, now=timezone.now())
    after = scrape(client)

    for outcome in ("offered", "accepted"):
        assert sample(after, "leadmarket_offers_total", outcome=outcome) == (
            sample(before, "leadmarket_offers_total", outcome=outcome) + 1
        )
    assert (
        sample(after, "leadmarket_offer_time_to_accept_seconds_count")
        == sample(before, "leadmarket_offer_time_to_accept_seconds_count") + 1
    )


def test_metrics_record_celery_task_outcomes_and_durations(client):
    from agencies.tasks import sweep_unpushed_notifications

    before = scrape(client)

    sweep_unpushed_notifications.apply()
    after = scrape(client)

    task = "agencies.tasks.sweep_unpushed_notifications"
    assert sample(after, "leadmarket_celery_tasks_total", task=task, outcome="success") == (
        sample(before, "leadmarket_celery_tasks_total", task=task, outcome="success") + 1
    )
    assert sample(after, "leadmarket_celery_task_seconds_count", task=task) == (
        sample(before, "leadmarket_celery_task_seconds_count", task=task) + 1
    )


def test_schema_is_served_whatever_token_comes_along(client, staff_client, agency_client):
    for caller in (client, staff_client, agency_client):
        assert caller.get("/api/schema/").status_code == 200
