"""Python CPU per request of the lead lists, measured in process, before and after side by side.

    .venv/bin/python bench/list_cpu.py --baseline-dir /tmp/base     # this checkout against another
    .venv/bin/python bench/list_cpu.py                              # this checkout alone

Sends each scenario's requests through django.test.Client (the whole middleware and DRF
stack, DEBUG off, persistent database connection) in a child process per checkout and round,
the two checkouts alternating, and prints the median CPU time per request of the Python
process (`time.process_time`: PostgreSQL's and Redis's own time is not in it), the queries
per request and the ratio of the two checkouts within each round. Other work on the machine
inflates CPU times too; compare the ratios, not the absolute numbers.

Reads the data `bench/generate.py` loaded (BENCH_DATABASE_URL, default leadmarket_bench) and
adds the bench's staff users to it; Redis DB 10 (BENCH_REDIS_URL) counts the rate limit.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SETUP = r"""
from django.contrib.auth.models import Group
from django.utils import timezone
from agencies.authentication import Realm, issue_tokens
from agencies.models import Agency, User
from leadmarket.api.pagination import encode_cursor
from leads.models import Lead, Offer

def staff(email, **fields):
    return User.objects.filter(email=email).first() or User.objects.create_user(email=email, password=None, **fields)

superuser = staff("bench-staff@bench.example", is_staff=True, is_superuser=True)
operations = staff("bench-operations@bench.example", is_staff=True)
operations.groups.add(Group.objects.get(name="operations"))
big = Agency.objects.get(pk=1)
offers = Offer.objects.visible_to(big, now=timezone.now()).order_by("-offered_at", "-id")
leads = Lead.objects.order_by("-received_at", "-id")
zipcode = offers.values_list("lead__zipcode", flat=True).first()
filtered = leads.filter(status="accepted", zipcode=zipcode)

def deep(rows, *fields):
    row = rows.values(*fields)[int(rows.count() * 0.9)]
    return encode_cursor([row[field] for field in fields])

agency, staff_token = issue_tokens(big.user, Realm.AGENCY)["access"], issue_tokens(superuser, Realm.STAFF)["access"]
role_token = issue_tokens(operations, Realm.STAFF)["access"]
mobile, admin = "/api/mobile/leads?page_size=50", "/api/admin/leads?page_size=50"
print(json.dumps({
    "mobile_first": [mobile, agency],
    "mobile_deep_cursor": [mobile + "&cursor=" + deep(offers, "offered_at", "id"), agency],
    "mobile_offered": [mobile + "&status=offered", agency],
    "admin_first": [admin, staff_token],
    "admin_first_role": [admin, role_token],
    "admin_deep_cursor": [admin + "&cursor=" + deep(leads, "received_at", "id"), staff_token],
    "admin_filtered_first": [f"{admin}&status=accepted&zipcode={zipcode}", staff_token],
    "admin_filtered_deep_cursor": [
        f"{admin}&status=accepted&zipcode={zipcode}&cursor=" + deep(filtered, "received_at", "id"), staff_token
    ],
}, default=str))
"""

MEASURE = r"""
from django.db import connection
from django.test import Client

client = Client()
result = {}
for name, (path, token) in json.loads(os.environ["LIST_CPU_SCENARIOS"]).items():
    headers = {"Authorization": "Bearer " + token}
    for _ in range(max(REQUESTS // 10, 5)):
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (name, response.status_code, response.content[:300])
    queries = []
    with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
        client.get(path, headers=headers)
    started = time.process_time()
    for _ in range(REQUESTS):
        client.get(path, headers=headers)
    result[name] = {"cpu_ms": (time.process_time() - started) / REQUESTS * 1000, "queries": len(queries)}
print(json.dumps(result))
"""


def child(env: dict, app_dir: Path, code: str) -> dict:
    script = "import json, os, time, django; django.setup()\n" + code
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=app_dir, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"child in {app_dir} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-dir", type=Path, help="another checkout, measured in the same rounds")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=300, help="per scenario, checkout and round")
    args = parser.parse_args()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leadmarket.settings",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leadmarket_bench"),
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"),
        "DJANGO_DEBUG": "false",  # debug mode records every query
        "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
        "SECURE_SSL_REDIRECT": "false",
        "BEHIND_TLS_PROXY": "false",
        "LOG_LEVEL": "WARNING",
        "JWT_ACCESS_MINUTES": "600",
        "API_RATE_LIMIT": "100000000/m",
    }
    env["LIST_CPU_SCENARIOS"] = json.dumps(child(env, ROOT, SETUP))
    checkouts = {"after": ROOT, **({"before": args.baseline_dir.resolve()} if args.baseline_dir else {})}
    runs: dict[str, list[dict]] = {label: [] for label in checkouts}
    measure = MEASURE.replace("REQUESTS", str(args.requests))
    for round_ in range(args.rounds):
        order = list(checkouts) if round_ % 2 == 0 else list(reversed(checkouts))
        for label in order:
            runs[label].append(child(env, checkouts[label], measure))
            print(f"round {round_ + 1}/{args.rounds}: {label} done", file=sys.stderr)

    labels = list(reversed(checkouts))  # before, after
    print(f"{'scenario':28}" + "".join(f"{label + ' ms':>12}" for label in labels) + "  queries", end="")
    print("   after/before (min-max)" if len(labels) == 2 else "")
    for name in runs["after"][0]:
        medians = [statistics.median(run[name]["cpu_ms"] for run in runs[label]) for label in labels]
        line = f"{name:28}" + "".join(f"{value:12.2f}" for value in medians)
        line += "  " + "/".join(str(runs[label][0][name]["queries"]) for label in labels)
        if len(labels) == 2:
            ratios = [a[name]["cpu_ms"] / b[name]["cpu_ms"] for a, b in zip(runs["after"], runs["before"], strict=True)]
            line += f"   {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        print(line)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
