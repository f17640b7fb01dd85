"""Load test of the webhook: gunicorn on loopback against PostgreSQL (and Redis as broker),
driven by wrk at 16 concurrent connections, every request a new lead.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/leadmarket_bench REDIS_URL=redis://127.0.0.1:6379/14
    .venv/bin/python bench/webhook_load.py --duration 20 --connections 16 --workers 4

Needs `wrk` (apt-get install -y wrk). Migrates the database, creates (or re-keys) a portal
`bench`, starts gunicorn, runs wrk, prints throughput and p50/p90/p99, checks that every
request made exactly one lead, and stops gunicorn.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LUA = r"""
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  tid = tid or 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
end
local zips = {"10001", "90210", "60601", "73301", "33101"}
function request()
  counter = counter + 1
  local id = string.format("%s-%d-%d", os.getenv("BENCH_RUN"), tid, counter)
  local body = string.format(
    '{"external_id": "%s", "first_name": "Ada", "last_name": "Lovelace", "email": "%s@example.com", ' ..
    '"zipcode": "%s", "lead_type": "auto", "tcpa_consent": true, "utm": {"source": "bench"}}',
    id, id, zips[(counter %% 5) + 1])
  return wrk.format(nil, nil, nil, body)
end
function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_s=%.2f errors_status=%d errors_socket=%d " ..
    "p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
""".replace("%%", "%")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(env: dict) -> str:
    """Migrates and returns a fresh key of the `bench` portal (in a child process with the env)."""
    code = (
        "import django; django.setup()\n"
        "from django.core.management import call_command; call_command('migrate', verbosity=0)\n"
        "from django.utils import timezone\n"
        "from portals import services; from portals.models import Portal\n"
        "p = Portal.objects.filter(code='bench').first()\n"
        "now = timezone.now()\n"
        "data = {'code': 'bench', 'name': 'Bench', 'rate_limit': '100000/s'}\n"
        "issued = (services.rotate_portal_key(actor=None, portal_id=p.pk, now=now, revoke_previous=True) if p else\n"
        "  services.create_portal(actor=None, now=now, data=data))\n"
        "print(issued.api_key)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def wait_ready(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def count_leads(env: dict, run: str) -> int:
    code = (
        "import django; django.setup()\n"
        "from leads.models import Lead\n"
        f"print(Lead.objects.filter(external_id__startswith='{run}-').count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--worker-threads", type=int, default=1, help="threads per worker (>1 = gthread)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database (it is migrated and written to).")

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leadmarket.settings",
        "DJANGO_DEBUG": "0",  # debug mode records every query: never benchmark with it
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-secret-key-not-for-production"),
        "LOG_LEVEL": "WARNING",
    }
    key = prepare(env)
    port = free_port()
    run = f"bench{int(time.time())}"
    gunicorn = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "leadmarket.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.worker_threads),
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(gunicorn, env=env, cwd=ROOT)
    try:
        wait_ready(port)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(LUA)
        url = f"http://127.0.0.1:{port}/api/webhooks/bench"
        wrk_env = {**env, "BENCH_KEY": key, "BENCH_RUN": run + "w"}
        # Warm-up: imports, ZIP dataset and connections in every worker.
        subprocess.run(
            ["wrk", "-t1", "-c4", "-d3s", "-s", script.name, url], env=wrk_env, check=True, capture_output=True
        )
        wrk_env["BENCH_RUN"] = run
        command = [
            "wrk",
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "--timeout",
            "5s",
            "-s",
            script.name,
            url,
        ]
        output = subprocess.run(command, env=wrk_env, check=True, capture_output=True, text=True).stdout
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    print(output)
    result = dict(item.split("=") for item in output.split("RESULT ")[1].split())
    requests, seconds = int(result["requests"]), float(result["duration_s"])
    leads = count_leads(env, run)
    print(
        f"gunicorn workers={args.workers} threads={args.worker_threads}; wrk {args.connections} connections, "
        f"{args.duration}s"
    )
    print(f"throughput: {requests / seconds:.0f} req/s ({requests} requests, {leads} leads stored)")
    print(
        f"latency: p50 {result['p50_ms']} ms, p90 {result['p90_ms']} ms, p99 {result['p99_ms']} ms, "
        f"max {result['max_ms']} ms; non-2xx {result['errors_status']}, socket errors {result['errors_socket']}"
    )


if __name__ == "__main__":
    main()
