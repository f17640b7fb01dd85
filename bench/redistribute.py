"""`redistribute_leads` over the generated backlog of unassigned leads: leads per second,
before and after side by side, optionally profiled.

    .venv/bin/python bench/redistribute.py                           # this checkout, 3 rounds
    .venv/bin/python bench/redistribute.py --baseline-dir /tmp/base  # alternating with another checkout
    .venv/bin/python bench/redistribute.py --profile /tmp/redis.prof # cProfile of one round
    .venv/bin/python bench/redistribute.py --instructions 2000 --baseline-dir /tmp/base  # callgrind counts

Reads the data `bench/generate.py` loaded (BENCH_DATABASE_URL, default leadmarket_bench).
Each round first puts the backlog back (`RESET`: the offers and notifications made since
the data was generated are deleted, their leads unassigned again, the webhook scenarios'
live offers are kept from expiring mid-round, then VACUUM ANALYZE, as
autovacuum would have done before a nightly run), then times the command's own function in
a child process with Django set up (DEBUG off). `bench/run.py` runs the same round.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import callgrind
import generate  # the bench directory is on the path: run as a script, or imported by run.py

ROOT = Path(__file__).resolve().parent.parent

ROUND = r"""
import cProfile, json, os, sys, time
import django
django.setup()
from django.db import connection
from django.utils import timezone
from leads import distribution
gate, mark, profile, limit = sys.argv[1:5]
with connection.cursor() as c:
    c.execute("DELETE FROM agencies_notification WHERE kind = 'lead_offered' AND created_at >= %s", [mark])
    c.execute("DELETE FROM leads_offer o USING leads_lead l WHERE o.lead_id = l.id AND l.external_id LIKE 'gen-%%'"
              " AND o.offered_at >= %s", [mark])
    c.execute("UPDATE leads_lead SET status = 'unassigned' WHERE id IN (SELECT id FROM leads_lead l WHERE"
              " external_id LIKE 'gen-%%' AND NOT EXISTS (SELECT 1 FROM leads_offer o WHERE o.lead_id = l.id))")
    # The webhook scenarios' offers expire 30 minutes after them: on data reused by later runs
    # a round would also expire and re-offer those, which is not the backlog it measures.
    c.execute("UPDATE leads_offer SET expires_at = now() + interval '7 days'"
              " WHERE status = 'offered' AND expires_at < now() + interval '1 day'")
    c.execute("SELECT count(*) FROM leads_lead WHERE status = 'unassigned'")
    backlog = c.fetchone()[0]
    c.execute("VACUUM ANALYZE leads_lead, leads_offer, agencies_notification, leads_rotationcursor")
if gate:  # counting instructions (callgrind.py): warm up, then wait until the counting is on
    distribution.retry_unassigned(now=timezone.now(), limit=1000)
    wait_for_gate(gate)
profiler = cProfile.Profile() if profile else None
started, cpu = time.perf_counter(), time.process_time()
if profiler:
    profiler.enable()
summary = distribution.redistribute_leads(now=timezone.now(), limit=int(limit) or None)
if profiler:
    profiler.disable()
    profiler.dump_stats(profile)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"backlog": backlog, "examined": summary.examined, "offered": summary.offered,
                  "unassigned": summary.unassigned, "seconds": round(seconds, 2),
                  "python_cpu_s": round(cpu, 2), "leads_per_s": round(summary.examined / seconds, 1)}), flush=True)
if gate:
    wait_for_gate_removal(gate)
"""


def environment(database_url: str, redis_url: str, app_dir: Path) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leadmarket.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(app_dir),
    }


def run_round(env: dict, mark: str, *, app_dir: Path = ROOT, profile: str = "") -> dict:
    """One reset and timed run in a child process of `app_dir`'s code."""
    out = subprocess.run(
        [sys.executable, "-c", callgrind.CHILD_HELPERS + ROUND, "", mark, profile, "0"],
        env=env, cwd=app_dir, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"redistribution round failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def count_instructions(env: dict, mark: str, *, app_dir: Path, leads: int) -> dict:
    """One reset and a run over `leads` leads under callgrind, counting only that run: the
    Python process's instructions per lead (PostgreSQL's work is not in it)."""
    result, total = callgrind.count(ROUND, [mark, "", str(leads)], env=env, cwd=app_dir)
    return {**result, "instructions_per_lead": total // result["examined"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-dir", type=Path, help="another checkout, run alternating with this one")
    parser.add_argument("--profile", default="", help="write a cProfile of one round of this checkout here")
    parser.add_argument(
        "--instructions", type=int, metavar="LEADS", help="Python instructions per lead over LEADS leads (valgrind)"
    )
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leadmarket_bench")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
    mark = json.loads(generate.STATE.read_text())["generated_at"]
    checkouts = {"now": ROOT, **({"baseline": args.baseline_dir.resolve()} if args.baseline_dir else {})}
    if args.profile:
        print(json.dumps(run_round(environment(database_url, redis_url, ROOT), mark, profile=args.profile)))
        return
    if args.instructions:
        for name, app_dir in checkouts.items():
            env = environment(database_url, redis_url, app_dir)
            print(f"{name}: {json.dumps(count_instructions(env, mark, app_dir=app_dir, leads=args.instructions))}")
        return
    results: dict[str, list[dict]] = {name: [] for name in checkouts}
    for round_number in range(args.rounds):
        order = list(checkouts.items())[:: 1 if round_number % 2 == 0 else -1]
        for name, app_dir in order:
            result = run_round(environment(database_url, redis_url, app_dir), mark, app_dir=app_dir)
            results[name].append(result)
            print(f"round {round_number + 1} {name}: {json.dumps(result)}", flush=True)
    for name, rounds in results.items():
        rates = [r["leads_per_s"] for r in rounds]
        print(f"{name}: median {statistics.median(rates):,.0f} leads/s (min {min(rates):,.0f}, max {max(rates):,.0f})")
    if "baseline" in results:
        ratios = [a["leads_per_s"] / b["leads_per_s"] for a, b in zip(results["now"], results["baseline"], strict=True)]
        print(f"now / baseline: median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")


if __name__ == "__main__":
    main()
