"""What pushing costs per notification through a real Celery worker, this checkout and
another side by side: the worker's CPU (Celery's handling of each task included), the
database's, and the notifying process's (it makes the notifications and hands them to the
worker, as a distribution run does).

    .venv/bin/python bench/push_worker.py --baseline-dir /tmp/base

Each round gives each checkout a new database (leadmarket_bench_push, recreated) and a
worker of its own (`celery worker -Q celery,push --concurrency 2`, Redis DB 11, emptied),
then notifies at a steady pace: `--rate` notifications a second in transactions of
`--batch` (a distribution run's offers), for `--seconds`, and waits until every push is
settled. CPU is user + system time from /proc over the whole round. The agencies have no
devices, as in `bench/run.py`. Rounds alternate the checkouts; medians with min/max.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import redis
from run import process_cpu_seconds, services_cpu_seconds, summarize  # the bench directory is on the path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "leadmarket_bench_push"

NOTIFIER = r"""
import json, sys, time
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from agencies import notifications
from agencies.models import Agency, Notification

rate, batch, seconds = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
call_command("migrate", verbosity=0)
User = get_user_model()
agencies = [Agency.objects.create(user=User.objects.create(email=f"push{n}@bench.example"),
                                  business_name=f"Push {n}").pk for n in range(50)]
with connection.cursor() as cursor:
    cursor.execute("SELECT pg_backend_pid()")
    backend = cursor.fetchone()[0]
print(json.dumps({"backend": backend}), flush=True)
sys.stdin.readline()  # the worker is up and the clocks are read
made, started = 0, time.monotonic()
while made < rate * seconds:
    events = [{"agency_id": agencies[(made + n) % len(agencies)], "kind": "lead_offered",
               "title": "New auto lead in 10001", "body": "A new auto lead in 10001 is yours to accept for 24 hours.",
               "data": {"lead_id": made + n, "offer_id": made + n}} for n in range(batch)]
    with transaction.atomic():
        notifications.notify_many(events, now=timezone.now())
    made += batch
    time.sleep(max(0.0, started + made / rate - time.monotonic()))
deadline = time.monotonic() + 120
while Notification.objects.filter(push_status__in=["pending", "sending"]).exists():
    assert time.monotonic() < deadline, "pushes did not settle"
    time.sleep(0.1)
print(json.dumps({"notifications": made, "seconds": round(time.monotonic() - started, 1)}), flush=True)
"""


def measure(app_dir: Path, args) -> dict:
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    redis_url = os.environ.get("BENCH_PUSH_REDIS_URL", "redis://127.0.0.1:6379/11")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leadmarket.settings",
        "DATABASE_URL": f"{args.server}/{DATABASE}",
        "REDIS_URL": redis_url,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(app_dir),
    }
    redis.Redis.from_url(redis_url).flushdb()
    notifier = subprocess.Popen(
        [sys.executable, "-c", NOTIFIER, str(args.rate), str(args.batch), str(args.seconds)],
        env=env, cwd=app_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    backend = json.loads(notifier.stdout.readline())["backend"]
    worker = subprocess.Popen(
        [str(app_dir / ".venv/bin/celery"), "-A", "leadmarket", "worker", "-Q", "celery,push", "--concurrency", "2",
         "-l", "WARNING"],
        env=env, cwd=app_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def snapshot() -> tuple:
        return (services_cpu_seconds(), process_cpu_seconds(worker.pid, include_parent=True),
                process_cpu_seconds(notifier.pid, include_parent=True))  # fmt: skip

    try:
        time.sleep(6)  # the worker is up
        before = snapshot()
        notifier.stdin.write("go\n")
        notifier.stdin.flush()
        done = json.loads(notifier.stdout.readline())
        after = snapshot()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        notifier.wait(timeout=60)
    # PostgreSQL's processes: the worker's backends (and autovacuum), apart from the notifier's
    # own, which is counted with the notifier. A backend started meanwhile counts from zero.
    database = {key: seconds - before[0].get(key, 0.0) for key, seconds in after[0].items() if key[0] == "db"}
    notifier_backend = sum(seconds for (_, pid, _), seconds in database.items() if pid == backend)
    cpu = {
        "worker_us": after[1] - before[1],
        "database_us": sum(database.values()) - notifier_backend,
        "notifier_us": after[2] - before[2] + notifier_backend,
    }
    return {name: round(seconds * 1e6 / done["notifications"]) for name, seconds in cpu.items()} | done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=300, help="notifications per second")
    parser.add_argument("--batch", type=int, default=40, help="notifications per transaction")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-dir", type=Path, help="another checkout, measured the same way")
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER_URL", "postgres://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    checkouts = {"now": ROOT, **({"baseline": args.baseline_dir.resolve()} if args.baseline_dir else {})}
    runs = {name: [] for name in checkouts}
    for round_ in range(args.rounds):
        order = list(checkouts.items())
        for name, app_dir in order[:: 1 if round_ % 2 == 0 else -1]:
            runs[name].append(measure(app_dir, args))
            print(f"round {round_ + 1} {name}: {json.dumps(runs[name][-1])}", file=sys.stderr, flush=True)
    metrics = ("worker_us", "database_us", "notifier_us")
    summary = {name: {metric: summarize([v[metric] for v in values]) for metric in metrics}
               for name, values in runs.items()}  # fmt: skip
    print(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "cpu_per_notification": summary},
                     indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
