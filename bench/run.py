"""The benchmark ladder: one command, ceilings measured in the same run next to the scenarios.

    .venv/bin/python bench/run.py                      # full: 1,000,000 leads, 3 interleaved rounds
    .venv/bin/python bench/run.py --leads 100000 --repeats 1 --duration 5   # quick
    .venv/bin/python bench/run.py --skip-generate      # reuse the loaded database
    .venv/bin/python bench/run.py --skip-generate --ingest-only --baseline-dir ../base   # the ingest path, side by side

Uses PostgreSQL database `leadmarket_bench` (recreated by the generator) and Redis DB 10
(override with BENCH_DATABASE_URL / BENCH_REDIS_URL). Starts gunicorn (sync workers, access
log off, DEBUG off, persistent DB connections) and, for the scenarios that distribute, a
Celery worker. Needs `wrk` and `pgbench` (apt-get install -y wrk postgresql-client).
Writes bench/results/<date>.md and .json. See README "Performance".
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
sys.path.insert(0, str(BENCH))

import generate  # noqa: E402
import redistribute  # noqa: E402

WRK_LUA = r"""
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  counter = 0; c2 = 0; c4 = 0; c5 = 0
  zips = {}
  for z in string.gmatch(os.getenv("BENCH_ZIPS") or "", "[^,]+") do table.insert(zips, z) end
  mode = os.getenv("BENCH_MODE")
  if mode == "post" then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
  else
    wrk.method = "GET"
    wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
  end
end
function request()
  if mode ~= "post" then return wrk.format() end
  counter = counter + 1
  local id = string.format("%s-%d-%d", os.getenv("BENCH_RUN"), tid, counter)
  local body = string.format(
    '{"external_id": "%s", "first_name": "Ada", "last_name": "Lovelace", "email": "%s@bench.example", ' ..
    '"zipcode": "%s", "lead_type": "auto", "tcpa_consent": true, "utm": {"source": "bench"}}',
    id, id, zips[(counter % #zips) + 1])
  return wrk.format(nil, nil, nil, body)
end
function response(status, headers, body)
  if status < 300 then c2 = c2 + 1 elseif status < 500 then c4 = c4 + 1 else c5 = c5 + 1 end
end
function done(summary, latency, requests)
  local s2, s4, s5 = 0, 0, 0
  for _, t in ipairs(threads) do s2 = s2 + t:get("c2"); s4 = s4 + t:get("c4"); s5 = s5 + t:get("c5") end
  io.write(string.format("RESULT requests=%d duration_s=%.3f s2xx=%d s4xx=%d s5xx=%d socket_errors=%d " ..
    "p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, summary.duration / 1e6, s2, s4, s5,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
"""


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def django(env: dict, code: str, app_dir: Path = ROOT) -> dict:
    """Runs `code` in a child process with Django set up; its last stdout line is JSON."""
    script = "import json, django; django.setup()\n" + code
    out = subprocess.run([PY, "-c", script], env=env, cwd=app_dir, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"child failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ensure_tools() -> None:
    if not shutil.which("wrk"):
        if os.geteuid() == 0 and shutil.which("apt-get"):
            log("installing wrk (apt-get install -y wrk)")
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
        else:
            raise SystemExit("wrk is missing: sudo apt-get install -y wrk")
    if not shutil.which("pgbench"):
        raise SystemExit("pgbench is missing: sudo apt-get install -y postgresql-client (or postgresql-contrib)")


PREPARE = r"""
from django.core.management import call_command
from django.utils import timezone
from portals import services
from portals.models import Portal
call_command("migrate", verbosity=0)
p = Portal.objects.filter(code="bench").first()
now = timezone.now()
data = {"code": "bench", "name": "Bench", "rate_limit": "1000000/s", "duplicate_window_days": 30}
issued = (services.rotate_portal_key(actor=None, portal_id=p.pk, now=now, revoke_previous=True) if p else
          services.create_portal(actor=None, now=now, data=data))
print(json.dumps({"key": issued.api_key, "portal_id": issued.portal.pk}))
"""

SETUP = r"""
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from agencies.authentication import Realm, issue_tokens
from agencies.models import Agency, User
from bench import ceilings
from leadmarket.api.pagination import encode_cursor
from leads.models import Lead, Offer
from django.utils import timezone
args = json.loads(ARGS)
ceilings.ensure_table()
staff = User.objects.filter(email="bench-staff@bench.example").first() or User.objects.create_superuser(
    email="bench-staff@bench.example", password=None)
big = Agency.objects.get(pk=1)
out = {"agency_token": issue_tokens(big.user, Realm.AGENCY)["access"],
       "staff_token": issue_tokens(staff, Realm.STAFF)["access"]}
# Deep cursors: the position 90% down each list.
now = timezone.now()
mobile = Offer.objects.visible_to(big, now=now).order_by("-offered_at", "-id")
n = mobile.count(); row = mobile.values("offered_at", "id")[int(n * 0.9)]
out["mobile_rows"] = n
out["mobile_deep"] = encode_cursor([row["offered_at"], row["id"]])
out["mobile_deep_page"] = int(n * 0.9) // 50
leads = Lead.objects.order_by("-received_at", "-id")
n = leads.count(); row = leads.values("received_at", "id")[int(n * 0.9)]
out["admin_rows"] = n
out["admin_deep"] = encode_cursor([row["received_at"], row["id"]])
filtered = leads.filter(status="accepted", zipcode=args["zip"])
n = filtered.count(); row = filtered.values("received_at", "id")[int(n * 0.9)]
out["admin_filtered_rows"] = n
out["admin_filtered_deep"] = encode_cursor([row["received_at"], row["id"]])
# Queries per request, from Django's own counter (a probe in this process, warm cache).
client = Client()
def probe(ext):
    body = {"external_id": ext, "first_name": "Ada", "last_name": "Lovelace", "email": ext + "@bench.example",
            "zipcode": args["zip"], "lead_type": "auto", "tcpa_consent": True}
    return client.post("/api/webhooks/bench", data=json.dumps(body), content_type="application/json",
                       headers={"X-API-Key": args["key"]})
probe("probewarm" + args["run"])
pipelines = []  # per statement: the psycopg pipeline it was sent in (one round trip), or None
def note_pipeline(execute, sql, params, many, context):
    pipelines.append(connection.connection._pipeline)
    return execute(sql, params, many, context)
with CaptureQueriesContext(connection) as q, connection.execute_wrapper(note_pipeline):
    response = probe("probe" + args["run"])
assert response.status_code == 201, response.content
# The statements of each round trip (message): a pipeline's statements travel together.
out["ingest_messages"] = []
for i, (x, pipeline) in enumerate(zip(q.captured_queries, pipelines, strict=True)):
    if pipeline is None or i == 0 or pipelines[i - 1] is not pipeline:
        out["ingest_messages"].append([])
    out["ingest_messages"][-1].append(x["sql"])
def count(path, token):
    with CaptureQueriesContext(connection) as q:
        r = client.get(path, headers={"Authorization": "Bearer " + token})
    assert r.status_code == 200, (path, r.content[:300])
    return len(q.captured_queries)
out["list_queries"] = {name: count(path.format(**out), out[tok]) for name, (path, tok) in args["lists"].items()}
def explain(qs):
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as c:
        c.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
        return "\n".join(r[0] for r in c.fetchall())
from leads import selectors
admin = selectors.admin_leads().order_by("-received_at", "-id")
out["explain"] = {
  "mobile_first": explain(mobile.values(*selectors.AGENCY_LEAD_COLUMNS)[:51]),
  "admin_first": explain(admin.values(*selectors.ADMIN_LEAD_COLUMNS)[:51]),
  "admin_filtered_first": explain(admin.filter(status="accepted", zipcode=args["zip"])
                                  .values(*selectors.ADMIN_LEAD_COLUMNS)[:51]),
}
print(json.dumps(out, default=str))
"""


def pgbench_script(messages: list[list[str]], run: str, zipcode: str) -> str:
    """The probe's ingest, round trip for round trip, with its literals replaced by
    per-transaction values. Run with `-M prepared`, as the app prepares them; the statements
    of one round trip go in one pipeline, which is one implicit transaction when no BEGIN
    precedes it, as in the app."""
    # n makes each external id and email new (a collision with an earlier run's lead would
    # abort pgbench); k is the duplicate lock's key, z the ZIP code.
    lines = ["\\set n random(1, 9000000000000000000)", "\\set k random(-2147483648, 2147483647)",
             "\\set z random(1, 99999)"]  # fmt: skip
    zip_expr = "lpad(:z::text, 5, '0')"
    for message in messages:
        statements = []
        for sql in message:
            if sql.startswith(("SAVEPOINT", "RELEASE")):
                continue
            # The duplicate window (30 days for the bench portal), then every other timestamp.
            sql = re.sub(r"received_at >= '[^']+'(::timestamptz)?", "received_at >= now() - interval '30 days'", sql)
            sql = re.sub(r"'\d{4}-\d\d-\d\d[ T][0-9:.+-]+'(::timestamptz)?", "now()", sql)
            # The duplicate lock's key is a hash of (ZIP code, email): per transaction, a random one.
            sql = re.sub(r"advisory_xact_lock\((\d+)(::int)?, -?\d+(::int)?\)", r"advisory_xact_lock(\1, :k)", sql)
            sql = sql.replace(f"'probe{run}@bench.example'", "(:client_id || '-' || :n || '@pgbench.example')")
            sql = sql.replace(f"'probe{run}'", "('pgb-' || :client_id || '-' || :n)")
            sql = sql.replace(f"'{zipcode}'", zip_expr)
            statements.append(sql.replace("\n", " ") + ";")
        lines += ["\\startpipeline", *statements, "\\endpipeline"] if len(statements) > 1 else statements
    return "\n".join(lines) + "\n"


class Stack:
    """gunicorn (and, when asked, a Celery worker) on loopback with the bench environment."""

    def __init__(self, env: dict, workers: int, app_dir: Path = ROOT):
        self.env, self.workers, self.app_dir = env, workers, app_dir
        self.port = free_port()
        self.web = self.worker = None

    def start(self) -> None:
        command = [str(ROOT / ".venv/bin/gunicorn"), "leadmarket.wsgi", "-c", str(self.app_dir / "gunicorn.conf.py")]
        env = {**self.env, "PORT": str(self.port), "WEB_CONCURRENCY": str(self.workers)}
        # No recycling (max_requests) while measuring: a recycled worker's CPU would go unseen.
        command += ["--bind", f"127.0.0.1:{self.port}", "--max-requests", "0"]
        self.web = subprocess.Popen(command, env=env, cwd=self.app_dir)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("gunicorn did not start")

    def start_worker(self, queues: str = "celery,push") -> None:
        """A Celery worker on `queues` (`celery` alone distributes and leaves pushes queued)."""
        command = [str(ROOT / ".venv/bin/celery"), "-A", "leadmarket", "worker", "--queues", queues,
                   "--concurrency", "2", "-l", "WARNING"]  # fmt: skip
        self.worker = subprocess.Popen(command, env=self.env, cwd=self.app_dir)
        time.sleep(4)

    def stop_worker(self) -> None:
        if self.worker:
            self.worker.send_signal(signal.SIGTERM)
            self.worker.wait(timeout=60)
            self.worker = None

    def stop(self) -> None:
        self.stop_worker()
        if self.web:
            self.web.send_signal(signal.SIGTERM)
            self.web.wait(timeout=30)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def web_cpu_seconds(self) -> float:
        """User + system CPU of the gunicorn workers so far: CPU per request is the measure
        that other work on the machine disturbs least."""
        return process_cpu_seconds(self.web.pid, include_parent=False)

    def worker_cpu_seconds(self) -> float:
        """User + system CPU of the Celery worker (main process and pool) so far."""
        return process_cpu_seconds(self.worker.pid, include_parent=True)


def services_cpu_seconds() -> dict[tuple[str, int, str], float]:
    """User + system CPU so far of each PostgreSQL and Redis process on this machine, by
    (service, pid, start time)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited
        service = {"postgres": "db", "redis-server": "redis"}.get(text[text.index("(") + 1 : text.rindex(")")])
        if service:
            fields = text.rsplit(")", 1)[1].split()
            found[(service, int(stat.parent.name), fields[19])] = int(fields[11]) + int(fields[12])
    return {key: ticks / os.sysconf("SC_CLK_TCK") for key, ticks in found.items()}


def cpu_per_unit(before: dict, units: float) -> dict[str, float]:
    """`db_cpu_ms` and `redis_cpu_ms`: the services' CPU since `before`, per unit, in ms. A
    process that exited meanwhile takes its CPU along (the servers' own connections persist;
    short ones, like pgbench's, are not counted)."""
    totals = {"db": 0.0, "redis": 0.0}
    for key, seconds in services_cpu_seconds().items():
        totals[key[0]] += seconds - before.get(key, 0.0)
    return {f"{service}_cpu_ms": round(1000 * seconds / units, 2) for service, seconds in totals.items()}


def process_cpu_seconds(parent: int, *, include_parent: bool) -> float:
    pids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    total = 0
    for pid in [str(parent)] * include_parent + pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def redis_purge(url: str) -> None:
    """Drops the tasks queued while no worker ran, and the flags saying a distribution or a
    push run is queued (`request_distribution`, `request_push`); `drain` queues the runs
    again for what they were for."""
    import redis

    client = redis.Redis.from_url(url)
    client.delete("celery", "push", *client.keys("*leads:distribution-queued"), *client.keys("*agencies:push-queued"))


DRAIN = r"""
from agencies.notifications import request_push
from leads.services import request_distribution
request_distribution()
request_push()
print(json.dumps({}))
"""


# Leads still to distribute, and pushes still to make for the notifications made since a
# time (runs push oldest first, so also those made before it).
WORKER_BACKLOG = """
    SELECT (SELECT count(*) FROM leads_lead WHERE status = 'new')
         + (SELECT count(*) FROM agencies_notification WHERE push_status IN ('pending', 'sending')
            AND created_at >= %s)"""


def drain(env: dict, url: str, pushes_since: datetime | None = None, timeout: float = 300) -> float:
    """Has the worker distribute every lead still `new` (the ingest-only runs' leads, as after
    an outage) and, given `pushes_since`, push the notifications made since then; waits
    until it did, so the next measurement starts from a worker that has caught up."""
    started = time.monotonic()
    django(env, DRAIN)
    while time.monotonic() - started < timeout:
        if sql_one(url, WORKER_BACKLOG, [pushes_since or datetime.max.replace(tzinfo=UTC)]) == 0:
            return round(time.monotonic() - started, 1)
        time.sleep(1)
    return -1


def set_aside_pgbench_leads(url: str) -> None:
    """pgbench's leads are not the bench's: marked `test` so that the worker leaves them alone
    (through the small index of `new` leads; deleting them would scan a million rows)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE leads_lead SET status = 'test' WHERE status = 'new' AND external_id LIKE 'pgb-%'")
        # pgbench leaves many dirty pages; flushed now, not during the next measurement.
        conn.execute("CHECKPOINT")


def discard_unpushed(url: str, since: datetime) -> None:
    """The redistribution round's notifications are not the bench's pushes (no worker runs
    then, and pushing is the notifications scenario's to measure): dropped with the table
    vacuumed, so that the next round's drain does not push 100,000 of them and leave their
    dead rows to an autovacuum during the next measurement."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM agencies_notification WHERE created_at >= %s AND pushed_at IS NULL", [since])
        conn.execute("VACUUM ANALYZE agencies_notification")


def settle(url: str, timeout: float = 30) -> None:
    """Waits until the server answers a bare request quickly (the previous scenario's tail,
    or a burst of other work on the shared machine, has passed)."""
    import urllib.request

    base = url.split("/api/")[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            urllib.request.urlopen(base + "/health/live", timeout=2).read()
            if time.monotonic() - started < 0.2:
                return
        except OSError:
            pass
        time.sleep(0.5)


def wrk(url: str, *, script: str, env: dict, connections: int, duration: int, server=None) -> dict:
    settle(url)
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", script, url]
    cpu_before = server.web_cpu_seconds() if server else None
    services_before = services_cpu_seconds()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    fields = dict(item.split("=") for item in done.stdout.split("RESULT ")[1].split())
    result = {k: float(v) for k, v in fields.items()}
    if not result["requests"]:
        result["wrk_output"] = done.stdout + done.stderr
    result["rps"] = round(result["requests"] / result["duration_s"], 1)
    if server and result["requests"]:
        # Requests wrk left in flight are served too: a slight overestimate, the same for every run.
        result["web_cpu_ms"] = round(1000 * (server.web_cpu_seconds() - cpu_before) / result["requests"], 2)
        result |= cpu_per_unit(services_before, result["requests"])
    return result


def pgbench(url: str, script: str, *, clients: int, duration: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ingest.sql"
        path.write_text(script)
        command = ["pgbench", "-n", "-M", "prepared", f"-c{clients}", "-j2", f"-T{duration}", "-f", str(path), "-l",
                   "--log-prefix", str(Path(tmp) / "log"), url]  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, cwd=tmp)
        if out.returncode:
            raise SystemExit(f"pgbench failed: {out.stderr[-2000:]}")
        latencies = sorted(
            int(line.split()[2]) / 1000
            for log_file in Path(tmp).glob("log*")
            for line in log_file.read_text().splitlines()
        )
    tps = float(re.search(r"tps = ([\d.]+) \(without initial", out.stdout).group(1))

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))], 2)

    return {"rps": round(tps, 1), "p50_ms": pct(50), "p99_ms": pct(99), "requests": len(latencies)}


def sql_one(url: str, query: str, params=()):
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchone()[0]


def run_stats(url: str, run: str) -> dict:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        leads, pending = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'new') FROM leads_lead WHERE external_id LIKE %s",
            [run + "-%"],
        ).fetchone()
        receptions = conn.execute(
            "SELECT count(*) FILTER (WHERE status_code BETWEEN 200 AND 299), count(*) FILTER (WHERE status_code >= 500)"
            " FROM portals_reception r JOIN leads_lead l ON l.id = r.lead_id WHERE l.external_id LIKE %s",
            [run + "-%"],
        ).fetchone()
    return {"leads": leads, "pending": pending, "receptions_2xx": receptions[0], "receptions_5xx": receptions[1]}


def rotation_spread(url: str, run: str) -> int:
    """Largest (most - fewest) offers among the agencies covering a ZIP code, over this run's leads."""
    import psycopg

    query = """
        WITH cover AS (
            SELECT DISTINCT t.zipcode, s.agency_id FROM subscriptions_territory t
            JOIN subscriptions_subscription s ON s.id = t.subscription_id WHERE s.status = 'active'),
        got AS (
            SELECT l.zipcode, o.agency_id, count(*) AS n FROM leads_lead l JOIN leads_offer o ON o.lead_id = l.id
            WHERE l.external_id LIKE %s GROUP BY 1, 2),
        per AS (
            SELECT c.zipcode, max(coalesce(g.n, 0)) - min(coalesce(g.n, 0)) AS spread FROM cover c
            LEFT JOIN got g USING (zipcode, agency_id)
            WHERE c.zipcode IN (SELECT zipcode FROM got) GROUP BY 1)
        SELECT coalesce(max(spread), 0) FROM per"""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, [run + "-%"]).fetchone()[0]


def wait_distributed(url: str, run: str, timeout: float = 180) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if run_stats(url, run)["pending"] == 0:
            return round(time.monotonic() - started, 1)
        time.sleep(1)
    return -1


def machine() -> dict:
    def version(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except Exception:
            return "?"

    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    cpu = next((line.split(":")[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")  # fmt: skip
    import django

    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(int(mem.split()[1]) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgresql": version(["psql", "--version"]),
        "server_version": None,
        "redis": version(["redis-server", "--version"]),
        "wrk": version(["wrk", "--version"]),
        "pgbench": version(["pgbench", "--version"]),
    }


def summarize(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--unassigned", type=int, default=100_000)
    parser.add_argument("--skip-generate", action="store_true", help="reuse the data already loaded")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians with min/max)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per throughput measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=150, help="constant-rate scenario, requests/s")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--baseline-dir", type=Path, help="another checkout to measure side by side (webhook)")
    parser.add_argument("--skip-redistribute", action="store_true")
    parser.add_argument(
        "--ingest-only", action="store_true", help="only the ceilings and the webhook scenarios without a worker"
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    ensure_tools()
    db_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leadmarket_bench")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leadmarket.settings",
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "DJANGO_DEBUG": "false",  # debug mode records every query: never benchmark with it
        "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
        "SECURE_SSL_REDIRECT": "false",
        "BEHIND_TLS_PROXY": "false",
        "GUNICORN_ACCESS_LOG": "",
        "LOG_LEVEL": "WARNING",
        "BENCH_CEILINGS": "1",
        "JWT_ACCESS_MINUTES": "600",
        "API_RATE_LIMIT": "100000000/m",  # the list scenarios are one client; the API limit is not measured
        "PYTHONPATH": str(ROOT),
    }
    started_at = datetime.now(UTC)
    results: dict = {
        "date": started_at.isoformat(timespec="seconds"),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    results["machine"] = machine()
    results["load_average_start"] = os.getloadavg()
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    results["git"] = git.stdout.strip()

    if not args.skip_generate:
        log(f"generating {args.leads:,} leads into {db_url}")
        generate.recreate_database(db_url)
        django(env, PREPARE)
        t = time.monotonic()
        results["data"] = generate.generate(
            db_url, leads=args.leads, unassigned=args.unassigned, zips=500, agencies=200, zips_per_agency=10, seed=9
        )
        results["data"]["seconds_total"] = round(time.monotonic() - t, 1)
        generate.STATE.write_text(json.dumps(results["data"]))
    else:
        results["data"] = json.loads(generate.STATE.read_text())
    zips = results["data"]["zipcodes"]
    results["machine"]["server_version"] = sql_one(db_url, "SHOW server_version")
    results["machine"]["postgres_settings"] = settings = sql_one(
        db_url, "SELECT json_object_agg(name, current_setting(name)) FROM unnest(%s::text[]) AS name",
        [list(POSTGRES_SETTINGS)],
    )  # fmt: skip
    if sql_one(db_url, "SELECT pg_size_bytes(current_setting('shared_buffers')) < 2^30"):
        log(f"PostgreSQL's shared_buffers is {settings['shared_buffers']}: the leads and their indexes may not"
            " fit, and redistribution would wait on the disk (README, Production)")  # fmt: skip
    prepared = django(env, PREPARE)
    key = prepared["key"]
    tag = f"b{int(time.time())}"
    hot_zip = zips[len(zips) // 2]
    lists = {
        "mobile_first": ("/api/mobile/leads?page_size=50", "agency_token"),
        "mobile_deep_cursor": ("/api/mobile/leads?page_size=50&cursor={mobile_deep}", "agency_token"),
        "admin_first": ("/api/admin/leads?page_size=50", "staff_token"),
        "admin_deep_cursor": ("/api/admin/leads?page_size=50&cursor={admin_deep}", "staff_token"),
        "admin_filtered_first": (f"/api/admin/leads?page_size=50&status=accepted&zipcode={hot_zip}", "staff_token"),
        "admin_filtered_deep_cursor": (
            f"/api/admin/leads?page_size=50&status=accepted&zipcode={hot_zip}&cursor={{admin_filtered_deep}}",
            "staff_token",
        ),
        # Last: its OFFSET scans take about a second each, and the ones wrk leaves in flight
        # would still be running during the next scenario.
        "mobile_deep_page": ("/api/mobile/leads?page_size=50&page={mobile_deep_page}", "agency_token"),
    }
    setup = django(
        env, SETUP.replace("ARGS", repr(json.dumps({"key": key, "zip": hot_zip, "run": tag, "lists": lists})))
    )
    results["ingest_sql"] = setup["ingest_messages"]
    transaction_control = ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT")
    messages = [[q for q in m if not q.startswith(transaction_control)] for m in setup["ingest_messages"]]
    messages = [m for m in messages if m]
    results["queries_per_request"] = {
        "webhook_ingest": len(messages),
        "webhook_ingest_statements": sum(map(len, messages)),
        **setup["list_queries"],
    }
    results["explain"] = setup["explain"]
    results["list_rows"] = {k: setup[k] for k in ("mobile_rows", "admin_rows", "admin_filtered_rows")}
    pgb = pgbench_script(setup["ingest_messages"], tag, hot_zip)
    results["pgbench_script"] = pgb

    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115 (removed in finally)
    lua.write(WRK_LUA)
    lua.close()
    stack = Stack(env, args.workers)
    baseline = Stack(env, args.workers, app_dir=args.baseline_dir.resolve()) if args.baseline_dir else None
    runs: dict[str, list[dict]] = {}
    checks: list[dict] = []

    def record(name: str, value: dict) -> dict:
        value["load_average"] = round(os.getloadavg()[0], 2)
        if value.get("requests") == 0:
            value["invalid"] = "no response within the run (the machine stalled); left out of medians"
        runs.setdefault(name, []).append(value)
        log(f"{name}: " + ", ".join(f"{k}={v}" for k, v in value.items() if k in ("rps", "p50_ms", "p95_ms",
            "p99_ms", "s5xx", "leads_per_s", "rate_achieved")))  # fmt: skip
        return value

    def post(server: Stack, name: str, run: str, zip_list: list[str]) -> None:
        wrk_env = {**env, "BENCH_MODE": "post", "BENCH_KEY": key, "BENCH_RUN": run, "BENCH_ZIPS": ",".join(zip_list)}
        worker_cpu = server.worker_cpu_seconds() if server.worker else None
        services_before = services_cpu_seconds()
        result = record(name, wrk(server.url("/api/webhooks/bench"), script=lua.name, env=wrk_env,
                                  connections=args.connections, duration=args.duration, server=server))  # fmt: skip
        time.sleep(0.5)
        stats = run_stats(db_url, run)
        if worker_cpu is not None:
            # Until the run's leads are distributed (its pushes may still be under way).
            wait_distributed(db_url, run)
            result["worker_cpu_ms"] = round(1000 * (server.worker_cpu_seconds() - worker_cpu) / stats["leads"], 2)
            # Per lead, until its distribution (and push) is done, like the worker's.
            result |= cpu_per_unit(services_before, stats["leads"])
        checks.append({
            "run": name, "responses_2xx": int(result["s2xx"]), "responses_5xx": int(result["s5xx"]),
            "leads_stored": stats["leads"], "receptions_2xx": stats["receptions_2xx"],
            # wrk stops with up to `connections` requests in flight; the server finishes them.
            "ok": result["s5xx"] == 0 and stats["receptions_2xx"] == stats["leads"]
                  and 0 <= stats["leads"] - result["s2xx"] <= args.connections,
        })  # fmt: skip

    try:
        stack.start()
        if baseline:
            baseline.start()
        warm = {**env, "BENCH_MODE": "post", "BENCH_KEY": key, "BENCH_RUN": tag + "warm", "BENCH_ZIPS": ",".join(zips)}
        for server in filter(None, (stack, baseline)):
            wrk(server.url("/api/webhooks/bench"), script=lua.name, env=warm, connections=8, duration=3)
            wrk(server.url("/api/bench/insert"), script=lua.name, env={**env, "BENCH_MODE": "get"}, connections=8,
                duration=2)  # fmt: skip
        for rep in range(args.repeats):
            log(f"--- round {rep + 1}/{args.repeats} (load average {os.getloadavg()[0]:.2f})")
            get_env = {**env, "BENCH_MODE": "get"}
            record("ceiling_noop", wrk(stack.url("/api/bench/noop"), script=lua.name, env=get_env,
                                       connections=args.connections, duration=args.duration, server=stack))  # fmt: skip
            record("ceiling_insert", wrk(stack.url("/api/bench/insert"), script=lua.name, env=get_env,
                                         connections=args.connections, duration=args.duration,
                                         server=stack))  # fmt: skip
            record("ceiling_pgbench", pgbench(db_url, pgb, clients=args.connections, duration=args.duration))
            set_aside_pgbench_leads(db_url)
            # Side by side with the baseline, in alternating order (the first run after the
            # ceilings is often the slower one on this machine).
            pair = [(stack, "webhook_spread", "s"), (baseline, "baseline_webhook_spread", "b")]
            for server, name, suffix in pair[:: 1 if rep % 2 == 0 else -1]:
                if server:
                    post(server, name, f"{tag}r{rep}{suffix}", zips)
            post(stack, "webhook_hot_zip", f"{tag}r{rep}h", [hot_zip])
            if args.ingest_only:
                continue
            # Notifications off: the worker distributes every lead meanwhile (offers and inbox
            # entries), its pushes stay queued. Then on: the worker also pushes.
            since = datetime.now(UTC)
            redis_purge(env["REDIS_URL"])
            stack.start_worker(queues="celery")
            checks.append({"run": "drain", "round": rep, "seconds": drain(env, db_url)})
            checks[-1]["ok"] = checks[-1]["seconds"] >= 0
            post(stack, "webhook_spread_distributing", f"{tag}r{rep}d", zips)
            stack.stop_worker()
            stack.start_worker()
            checks.append({"run": "drain with pushes", "round": rep, "seconds": drain(env, db_url, since)})
            checks[-1]["ok"] = checks[-1]["seconds"] >= 0
            run = f"{tag}r{rep}n"
            post(stack, "webhook_spread_notifications", run, zips)
            drained = wait_distributed(db_url, run)
            checks.append({"run": "rotation", "round": rep, "max_spread_per_zip": rotation_spread(db_url, run),
                           "distributed_after_s": drained})  # fmt: skip
            checks[-1]["ok"] = checks[-1]["max_spread_per_zip"] <= 1 and drained >= 0
            crun = f"{tag}r{rep}c"
            out = subprocess.run(
                [PY, str(BENCH / "constant_rate.py"), stack.url("/api/webhooks/bench"), "--rate", str(args.rate),
                 "--duration", str(args.duration), "--key", key, "--run", crun, "--zips", ",".join(zips)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            result = record("webhook_constant_rate", json.loads(out.stdout))
            wait_distributed(db_url, crun)
            stats = run_stats(db_url, crun)
            ok2xx = sum(v for k, v in result["statuses"].items() if k.startswith("2"))
            checks.append({"run": "webhook_constant_rate", "responses_2xx": ok2xx, "leads_stored": stats["leads"],
                           "responses_5xx": sum(v for k, v in result["statuses"].items() if k.startswith("5")),
                           "ok": ok2xx == stats["leads"] == result["sent"]})  # fmt: skip
            stack.stop_worker()
            for name, (path, token) in lists.items():
                list_env = {**env, "BENCH_MODE": "get", "BENCH_TOKEN": setup[token]}
                url = stack.url(path.format(**setup))
                # Unmeasured first: the first reads of the rows the webhook scenarios just wrote
                # set their hint bits, and a big list's first request fills its count estimate
                # (pagination.ESTIMATE_CACHE_SECONDS); both are one-off costs, not the list's.
                wrk(url, script=lua.name, env=list_env, connections=2, duration=1)
                # As many clients as cores: latency, not queueing behind the other connections.
                result = record(name, wrk(url, script=lua.name, env=list_env, connections=2,
                                          duration=max(3, args.duration // 2), server=stack))  # fmt: skip
                answered = int(result["s2xx"] + result["s4xx"] + result["s5xx"])
                checks.append({"run": name, "round": rep, "responses_2xx": int(result["s2xx"]),
                               "responses_other": answered - int(result["s2xx"]),
                               "ok": answered > 0 and result["s2xx"] == answered})  # fmt: skip
            if not args.skip_redistribute:
                mark, started = results["data"]["generated_at"], datetime.now(UTC)
                # As the minute's task runs it (one process per part of the ZIP codes), and
                # in one process, side by side, in alternating order.
                rounds = [("redistribute_leads", redistribute.PARTS), ("redistribute_leads_one_process", 1)]
                for name, parts in rounds[:: 1 if rep % 2 == 0 else -1]:
                    record(name, redistribute.run_round(env, mark, parts=parts))
                discard_unpushed(db_url, started)
    finally:
        stack.stop()
        if baseline:
            baseline.stop()
        os.unlink(lua.name)

    results["runs"] = runs
    results["checks"] = checks
    results["load_average_end"] = os.getloadavg()
    results["summary"] = summary = {}
    for name, values in runs.items():
        values = [v for v in values if "invalid" not in v] or values
        summary[name] = {
            metric: summarize([v[metric] for v in values])
            for metric in (
                "rps",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "leads_per_s",
                "rate_achieved",
                "web_cpu_ms",
                "worker_cpu_ms",
                "db_cpu_ms",
                "redis_cpu_ms",
            )
            if metric in values[0]
        }
    results["ratios"] = ratios(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / started_at.strftime("%Y-%m-%d-%H%M")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    stem.with_suffix(".md").write_text(markdown(results))
    log(f"wrote {stem}.md and .json")
    print(stem.with_suffix(".md").read_text())


# PostgreSQL's settings the results depend on, recorded with them.
POSTGRES_SETTINGS = ("shared_buffers", "max_wal_size", "synchronous_commit", "max_connections")


def ratios(runs: dict) -> dict:
    """Ratios computed within each round (side by side), then median/min/max over rounds."""

    def per_round(a: str, b: str, metric: str = "rps"):
        if a not in runs or b not in runs:
            return None
        pairs = zip(runs[a], runs[b], strict=False)
        values = [x[metric] / y[metric] for x, y in pairs if y[metric] and x[metric] and "invalid" not in x]
        return summarize(values) if values else None

    out = {
        "webhook / insert ceiling": per_round("webhook_spread", "ceiling_insert"),
        "webhook / noop ceiling": per_round("webhook_spread", "ceiling_noop"),
        "webhook / pgbench ceiling": per_round("webhook_spread", "ceiling_pgbench"),
        "insert ceiling / noop ceiling": per_round("ceiling_insert", "ceiling_noop"),
        "hot ZIP / spread": per_round("webhook_hot_zip", "webhook_spread"),
        "notifications on / off (both distributing)": per_round(
            "webhook_spread_notifications", "webhook_spread_distributing"
        ),
        "distributing and notifying / ingest only": per_round("webhook_spread_notifications", "webhook_spread"),
        "webhook now / baseline": per_round("webhook_spread", "baseline_webhook_spread"),
        "webhook web CPU per request, now / baseline": per_round(
            "webhook_spread", "baseline_webhook_spread", "web_cpu_ms"
        ),
        "webhook web CPU per request / insert ceiling's": per_round("webhook_spread", "ceiling_insert", "web_cpu_ms"),
        "mobile deep (cursor) / first p99": per_round("mobile_deep_cursor", "mobile_first", "p99_ms"),
        "admin deep (cursor) / first p99": per_round("admin_deep_cursor", "admin_first", "p99_ms"),
        "admin filtered deep / first p99": per_round("admin_filtered_deep_cursor", "admin_filtered_first", "p99_ms"),
        "redistribution, parts side by side / one process": per_round(
            "redistribute_leads", "redistribute_leads_one_process", "leads_per_s"
        ),
    }
    return {k: v for k, v in out.items() if v}


def fmt(stat: dict | None) -> str:
    if not stat:
        return "-"
    return f"{stat['median']:g} ({stat['min']:g}-{stat['max']:g})"


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"# Benchmark {r['date']} (commit {r.get('git', '?')})",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB; Linux {m['kernel']}; Python {m['python']};"
        f" Django {m['django']}; PostgreSQL {m['server_version']}; {m['redis']}; {m['wrk']}.",
        "PostgreSQL settings: "
        + (", ".join(f"{k} {v}" for k, v in m["postgres_settings"].items()) if "postgres_settings" in m else "-")
        + ".",
        f"Load average at start {r['load_average_start'][0]:.2f}, at end {r['load_average_end'][0]:.2f}"
        " (other work shares this machine: compare ratios measured side by side, not absolute numbers).",
        f"Data: {r['data']['leads']:,} leads ({r['data']['unassigned']:,} unassigned), {r['data']['offers']:,} offers,"
        f" {r['data']['agencies']} agencies, {r['data']['territories']:,} territories over {len(r['data']['zipcodes'])}"
        f" ZIP codes; loaded in {r['data'].get('seconds_total', r['data']['load_seconds'])} s.",
        f"Settings: {r['args']}",
        "",
        "Each figure: median (min-max) over the interleaved rounds.",
        "",
        "| scenario | req/s | p50 ms | p95 ms | p99 ms | other |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in r["summary"].items():
        other = ""
        if "leads_per_s" in s:
            other = f"{fmt(s['leads_per_s'])} leads/s"
        if "rate_achieved" in s:
            other = f"rate achieved {fmt(s['rate_achieved'])}/s"
        if "web_cpu_ms" in s:
            other = f"web CPU {fmt(s['web_cpu_ms'])} ms/request"
        if "worker_cpu_ms" in s:
            other += f"; worker CPU {fmt(s['worker_cpu_ms'])} ms/lead"
        if "db_cpu_ms" in s:
            per = "lead" if "worker_cpu_ms" in s else "request"
            other += f"; PostgreSQL {fmt(s['db_cpu_ms'])}, Redis {fmt(s['redis_cpu_ms'])} ms/{per}"
        lines.append(
            f"| {name} | {fmt(s.get('rps'))} | {fmt(s.get('p50_ms'))} | {fmt(s.get('p95_ms'))} |"
            f" {fmt(s.get('p99_ms'))} | {other} |"
        )
    lines += ["", "## Ratios (per round, side by side)", "", "| ratio | median (min-max) |", "|---|---|"]
    lines += [f"| {name} | {fmt(value)} |" for name, value in r["ratios"].items()]
    lines += ["", "## Correctness", "", f"Queries per request (Django's counter): {r['queries_per_request']}", ""]
    lines += [f"- {json.dumps(c)}" for c in r["checks"]]
    lines += ["", f"All checks passed: {all(c['ok'] for c in r['checks'])}", "", "## Ingest SQL (probe)", "", "```sql"]
    for number, message in enumerate(r["ingest_sql"], 1):
        lines += [f"-- round trip {number}: {len(message)} statement(s), prepared, sent in one pipeline", *message]
    lines += ["```", "", "## EXPLAIN (first pages)", ""]
    for name, plan in r["explain"].items():
        lines += [f"### {name}", "", "```", plan, "```", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
