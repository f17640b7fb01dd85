"""`redistribute_leads` over the generated backlog of unassigned leads: leads per second,
before and after side by side, optionally profiled.

    .venv/bin/python bench/redistribute.py                           # this checkout, 3 rounds, one process
    .venv/bin/python bench/redistribute.py --baseline-dir /tmp/base  # alternating with another checkout
    .venv/bin/python bench/redistribute.py --baseline-dir . --parts 2  # 2 parts against one process, this code
    .venv/bin/python bench/redistribute.py --profile /tmp/redis.prof # cProfile of one round
    .venv/bin/python bench/redistribute.py --instructions 2000 --baseline-dir /tmp/base  # callgrind counts

Reads the data `bench/generate.py` loaded (BENCH_DATABASE_URL, default leadmarket_bench).
Each round first puts the backlog back (`RESET`: the offers and notifications made since
the data was generated are deleted, their leads unassigned again, the webhook scenarios'
live offers are kept from expiring mid-round, then VACUUM ANALYZE, as
autovacuum would have done before a nightly run), then times the command's own function in
a child process with Django set up (DEBUG off), or, with `--parts N`, N child processes over
the N parts of the ZIP codes started together, as the minute's task runs in production
(`leads.tasks.redistribute_leads`). `bench/run.py` runs the same round.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import callgrind
import generate  # the bench directory is on the path: run as a script, or imported by run.py

ROOT = Path(__file__).resolve().parent.parent

SETUP = r"""
import cProfile, json, os, sys, time
import django
django.setup()
from django.db import connection
from django.utils import timezone
from leads import distribution
gate, mark, profile, limit, partition = sys.argv[1:6]
"""

RESET = r"""
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
"""

TIMED = r"""
if gate and not partition:  # counting instructions (callgrind.py): warm up, then wait until the counting is on
    distribution.retry_unassigned(now=timezone.now(), limit=1000)
if gate:  # counting, or a part waiting for the others to be ready
    wait_for_gate(gate)
profiler = cProfile.Profile() if profile else None
started, cpu, started_at = time.perf_counter(), time.process_time(), time.time()
if profiler:
    profiler.enable()
summary = distribution.redistribute_leads(
    now=timezone.now(), limit=int(limit) or None,
    **({"partition": tuple(map(int, partition.split("/")))} if partition else {}))
if profiler:
    profiler.disable()
    profiler.dump_stats(profile)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"examined": summary.examined, "offered": summary.offered, "unassigned": summary.unassigned,
                  "seconds": round(seconds, 2), "python_cpu_s": round(cpu, 2),
                  "leads_per_s": round(summary.examined / seconds, 1),
                  "started_at": started_at, "finished_at": time.time(),
                  **({"backlog": backlog} if "backlog" in globals() else {})}), flush=True)
if gate and not partition:
    wait_for_gate_removal(gate)
"""

# The production setting's default (settings.REDISTRIBUTION_PARTITIONS): the minute's run as
# two tasks, which a worker's two processes take side by side.
PARTS = 2

# One reset and one timed run in one process (the gate argument is for callgrind.py).
ROUND = SETUP + RESET + TIMED


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


def run_round(env: dict, mark: str, *, app_dir: Path = ROOT, profile: str = "", parts: int = 1) -> dict:
    """One reset and timed run of `app_dir`'s code: in one child process, or with `parts` > 1
    as the minute's task runs it in production, one process per part of the ZIP codes
    (`distribution.zip_part`), started together; leads per second over them all."""
    if parts == 1:
        return _child(env, app_dir, ROUND, ["", mark, profile, "0", ""])
    backlog = _child(env, app_dir, SETUP + RESET + "print(json.dumps({'backlog': backlog}))", ["", mark, "", "0", ""])
    code = callgrind.CHILD_HELPERS + SETUP + TIMED
    with tempfile.TemporaryDirectory() as tmp:
        gate = Path(tmp, "gate")
        children = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(gate), mark, "", "0", f"{part}/{parts}"],
                env=env, cwd=app_dir, stdout=subprocess.PIPE, text=True,
            )
            for part in range(parts)
        ]  # fmt: skip
        for child in children:
            while (line := child.stdout.readline()) and line.strip() != "READY":
                pass
        gate.touch()
        outputs = [child.communicate()[0] for child in children]
        if any(child.returncode for child in children):
            raise SystemExit("a part of the redistribution round failed (its traceback is above)")
        results = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
    seconds = max(r["finished_at"] for r in results) - min(r["started_at"] for r in results)
    examined = sum(r["examined"] for r in results)
    return {
        **backlog,
        "parts": parts,
        "examined": examined,
        "offered": sum(r["offered"] for r in results),
        "unassigned": sum(r["unassigned"] for r in results),
        "seconds": round(seconds, 2),
        "python_cpu_s": round(sum(r["python_cpu_s"] for r in results), 2),
        "leads_per_s": round(examined / seconds, 1),
    }


def _child(env: dict, app_dir: Path, code: str, args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", callgrind.CHILD_HELPERS + code, *args],
        env=env,
        cwd=app_dir,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"redistribution round failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def count_instructions(env: dict, mark: str, *, app_dir: Path, leads: int) -> dict:
    """One reset and a run over `leads` leads under callgrind, counting only that run: the
    Python process's instructions per lead (PostgreSQL's work is not in it)."""
    result, total = callgrind.count(ROUND, [mark, "", str(leads), ""], env=env, cwd=app_dir)
    return {**result, "instructions_per_lead": total // result["examined"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-dir", type=Path, help="another checkout, run alternating with this one")
    parser.add_argument(
        "--parts", type=int, default=1, help=f"processes, one per part of the ZIP codes ({PARTS} in production)"
    )
    parser.add_argument("--baseline-parts", type=int, default=1, help="the same for --baseline-dir (may be .)")
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
            parts = args.parts if name == "now" else args.baseline_parts
            result = run_round(environment(database_url, redis_url, app_dir), mark, app_dir=app_dir, parts=parts)
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
