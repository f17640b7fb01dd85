"""The web process's instructions per request, webhook against the insert ceiling, counted
by callgrind: the same count however busy the machine is, so a change to the webhook's
Python can be measured on this noisy host (the database's and Redis's work are not in it).

    .venv/bin/python bench/webhook_instructions.py                          # this checkout
    .venv/bin/python bench/webhook_instructions.py --baseline-dir /tmp/base # and another, side by side

Requests go through the real WSGI application in process (middleware, URL routing, the
view, PostgreSQL and Redis), as `bench/run.py`'s gunicorn workers run them, on the data
`bench/generate.py` loaded (BENCH_DATABASE_URL, default leadmarket_bench) with the bench
portal's key rotated, and without a Celery worker (the `webhook_spread` scenario's setting).
Not while `bench/run.py` runs: rotating the key makes that run's webhooks 401s.
"""

import argparse
import json
import os
from pathlib import Path

import callgrind

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import io, json, sys, time, uuid
import django
django.setup()
from django.core.wsgi import get_wsgi_application
from django.db import connection
from django.utils import timezone
from bench import ceilings
from portals import services
from portals.models import Portal
gate, kind, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
ceilings.ensure_table()
portal = Portal.objects.get(code="bench")
key = services.rotate_portal_key(actor=None, portal_id=portal.pk, now=timezone.now(), revoke_previous=True).api_key
connection.close()  # requests open their own, as in a web worker
app = get_wsgi_application()
run = uuid.uuid4().hex[:12]
def environ(number):
    if kind == "insert":
        path, body, headers = "/api/bench/insert", b"", {}
    else:
        external_id = f"{run}-{number}"
        body = json.dumps({"external_id": external_id, "first_name": "Ada", "last_name": "Lovelace",
                           "email": f"{external_id}@bench.example", "zipcode": "10001", "lead_type": "auto",
                           "tcpa_consent": True, "utm": {"source": "bench"}}).encode()
        path, headers = "/api/webhooks/bench", {"HTTP_X_API_KEY": key}
    return {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "wsgi.version": (1, 0), "HTTP_HOST": "127.0.0.1:8000", **headers}
def request(number):
    statuses = []
    body = app(environ(number), lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(body)
    body.close()
    assert statuses[0][:1] == "2", statuses
for number in range(50):  # warm: caches, connections, prepared statements
    request(-number - 1)
wait_for_gate(gate)
for number in range(count):
    request(number)
print(json.dumps({"requests": count}), flush=True)
wait_for_gate_removal(gate)
"""


def environment(app_dir: Path) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leadmarket.settings",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leadmarket_bench"),
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
        "SECURE_SSL_REDIRECT": "false",
        "BEHIND_TLS_PROXY": "false",
        "LOG_LEVEL": "WARNING",
        "BENCH_CEILINGS": "1",
        "PYTHONPATH": str(app_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--baseline-dir", type=Path, help="another checkout, counted the same way")
    args = parser.parse_args()
    checkouts = {"now": ROOT, **({"baseline": args.baseline_dir.resolve()} if args.baseline_dir else {})}
    for name, app_dir in checkouts.items():
        counts = {}
        for kind in ("webhook", "insert"):
            result, total = callgrind.count(CHILD, [kind, str(args.requests)], env=environment(app_dir), cwd=app_dir)
            counts[kind] = total // result["requests"]
        ratio = counts["webhook"] / counts["insert"]
        print(f"{name}: {json.dumps(counts | {'webhook / insert': round(ratio, 2)})}", flush=True)


if __name__ == "__main__":
    main()
