"""Deterministic bench data, bulk-loaded with COPY: ZIP codes, plans, agencies with live
subscriptions and territories, and leads with their offers and receptions.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/leadmarket_bench \\
        .venv/bin/python bench/generate.py --leads 1000000 --unassigned 100000

Recreates the database (it must be named *bench*), migrates it, then loads. The same
`--seed` gives the same rows. Layout (see `plan_layout`):

- `--zips` real ZIP codes (standard, active, from the `zipcodes` package), seeded sample;
- `--agencies` agencies, each with one live subscription on an unlimited plan; agency 1
  ("big") covers every ZIP code, every other agency `--zips-per-agency` of them;
- leads spread over the ZIP codes, received over the last 90 days, each with one
  reception; `--unassigned` of them are `unassigned` with no offer (the redistribution
  scenario's backlog), the rest offered (10%, offer live for a week) or accepted, each with
  its offer to an agency of its ZIP code in round-robin order.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
# What was loaded, for `run.py --skip-generate` and `redistribute.py`.
STATE = ROOT / "bench" / ".state.json"
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "John"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Backus"]
TYPES = ["auto", "home", "life", "health"]


def progress(label: str, done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    rate = done / max(time.monotonic() - started, 1e-6)
    sys.stderr.write(f"\r{label:<12} [{'#' * filled}{'.' * (width - filled)}] {done:>9,}/{total:,} {rate:>9,.0f}/s")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def real_zipcodes(count: int, rng: random.Random) -> list[dict]:
    import zipcodes

    pool = [z for z in zipcodes.list_all() if z["zip_code_type"] == "STANDARD" and z["active"]]
    pool.sort(key=lambda z: z["zip_code"])
    return sorted(rng.sample(pool, count), key=lambda z: z["zip_code"])


def recreate_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"Refusing to recreate database {name!r}: its name must contain 'bench'.")
    import psycopg

    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DJANGO_DEBUG": "1", "DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def copy_rows(cur, table: str, columns: list[str], rows, total: int, label: str) -> None:
    started = time.monotonic()
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for done, row in enumerate(rows, 1):
            copy.write_row(row)
            if done % 20000 == 0 or done == total:
                progress(label, done, total, started)


def generate(
    url: str, *, leads: int, unassigned: int, zips: int, agencies: int, zips_per_agency: int, seed: int
) -> dict:
    import psycopg

    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    zip_rows = real_zipcodes(zips, rng)
    zip_codes = [z["zip_code"] for z in zip_rows]
    city = {z["zip_code"]: (z["city"][:100], z["state"]) for z in zip_rows}
    started = time.monotonic()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        # Plans, users, agencies, subscriptions, territories: small, plain inserts.
        cur.execute(
            "INSERT INTO subscriptions_plan (name, description, price_per_zipcode, base_price, max_zipcodes,"
            " monthly_lead_cap, is_active, display_order, created_at, updated_at) VALUES"
            " ('Bench', '', 10, 0, 1000, NULL, true, 1, %s, %s) RETURNING id",
            [now, now],
        )
        plan_id = cur.fetchone()[0]
        covering: dict[str, list[tuple[int, int]]] = {code: [] for code in zip_codes}
        user_rows, agency_rows, sub_rows, territory_rows = [], [], [], []
        cur.execute("SELECT coalesce(max(id), 0) FROM agencies_user")
        first_user = cur.fetchone()[0] + 1
        for n in range(1, agencies + 1):
            user_rows.append(
                (first_user + n - 1, "!", False, f"agency{n}@bench.example", f"Agency {n}", True, False, now)
            )
        copy_rows(
            cur,
            "agencies_user",
            ["id", "password", "is_superuser", "email", "full_name", "is_active", "is_staff", "created_at"],
            user_rows,
            len(user_rows),
            "users",
        )
        cur.execute("SELECT setval(pg_get_serial_sequence('agencies_user', 'id'), (SELECT max(id) FROM agencies_user))")
        for n in range(1, agencies + 1):
            agency_rows.append(
                (n, f"Agency {n}", f"Owner {n}", "+15555550100", "active", True, now, now, first_user + n - 1)
            )
            sub_rows.append((n, "active", 0, 10, now - timedelta(days=10), now - timedelta(days=10),
                             now + timedelta(days=20), False, now, now, n, plan_id))  # fmt: skip
            held = zip_codes if n == 1 else rng.sample(zip_codes, min(zips_per_agency, len(zip_codes)))
            for code in held:
                territory_rows.append((code, *city[code], now, n))
                covering[code].append((n, n))  # (agency id, subscription id): same numbers here
        copy_rows(
            cur,
            "agencies_agency",
            ["id", "business_name", "contact_name", "phone", "status", "accepting_leads", "created_at", "updated_at",
             "user_id"],
            agency_rows, len(agency_rows), "agencies",
        )  # fmt: skip
        copy_rows(
            cur,
            "subscriptions_subscription",
            ["id", "status", "base_price", "price_per_zipcode", "started_at", "current_period_start",
             "current_period_end", "cancel_at_period_end", "created_at", "updated_at", "agency_id", "plan_id"],
            sub_rows, len(sub_rows), "subscriptions",
        )  # fmt: skip
        copy_rows(
            cur,
            "subscriptions_territory",
            ["zipcode", "city", "state", "created_at", "subscription_id"],
            territory_rows,
            len(territory_rows),
            "territories",
        )
        for table in ("agencies_agency", "subscriptions_subscription"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        for code in zip_codes:
            covering[code].sort()

        cur.execute("SELECT id FROM portals_portal WHERE code = 'bench'")
        portal_id = cur.fetchone()[0]
        # Leads: ids 1..N in arrival order; the unassigned ones are spread evenly.
        span = timedelta(days=90).total_seconds()
        every = max(leads // max(unassigned, 1), 1)
        statuses, offers_of = [], []
        turn = {code: 0 for code in zip_codes}
        lead_zip = []
        for i in range(1, leads + 1):
            code = zip_codes[rng.randrange(len(zip_codes))]
            lead_zip.append(code)
            if unassigned and i % every == 0 and i // every <= unassigned:
                statuses.append("unassigned")
                offers_of.append(None)
                continue
            status = "offered" if rng.random() < 0.1 else "accepted"
            statuses.append(status)
            choices = covering[code]
            offers_of.append(choices[turn[code] % len(choices)])
            turn[code] += 1

        def received(i: int) -> datetime:
            return now - timedelta(seconds=span * (leads - i) / leads) - timedelta(minutes=5)

        def lead_rows():
            for i in range(1, leads + 1):
                code = lead_zip[i - 1]
                at = received(i)
                yield (
                    i, statuses[i - 1], at, at, FIRST[i % 10], LAST[(i // 10) % 10], f"lead{i}@bench.example",
                    f"+1202{i:07d}"[:12], code, "", *city[code], TYPES[i % 4], "{}", True, "", None, "",
                    f"gen-{i}", "", False, portal_id,
                )  # fmt: skip

        copy_rows(
            cur,
            "leads_lead",
            ["id", "status", "received_at", "status_changed_at", "first_name", "last_name", "email", "phone",
             "zipcode", "address", "city", "state", "lead_type", "details", "tcpa_consent", "consent_text",
             "consented_at", "certificate_url", "external_id", "idempotency_key", "is_test", "portal_id"],
            lead_rows(), leads, "leads",
        )  # fmt: skip
        cur.execute("SELECT setval(pg_get_serial_sequence('leads_lead', 'id'), %s)", [leads])

        offered = leads - statuses.count("unassigned")

        def offer_rows():
            for i in range(1, leads + 1):
                chosen = offers_of[i - 1]
                if chosen is None:
                    continue
                at = received(i) + timedelta(seconds=1)
                live = statuses[i - 1] == "offered"
                decision = json.dumps({"mode": "rotation", "zipcode": lead_zip[i - 1], "generated": True})
                yield (
                    statuses[i - 1], at, (now + timedelta(days=7)) if live else at + timedelta(minutes=30),
                    None if live else at + timedelta(minutes=3), "", "", decision, None, chosen[0], None, i,
                    chosen[1],
                )  # fmt: skip

        copy_rows(
            cur,
            "leads_offer",
            ["status", "offered_at", "expires_at", "responded_at", "reject_reason", "reject_note", "decision",
             "reminded_at", "agency_id", "assigned_by_id", "lead_id", "subscription_id"],
            offer_rows(), offered, "offers",
        )  # fmt: skip

        def reception_rows():
            for i in range(1, leads + 1):
                payload = json.dumps({"external_id": f"gen-{i}", "zipcode": lead_zip[i - 1], "lead_type": TYPES[i % 4]})
                yield ("bench", received(i), "127.0.0.1", 201, "accepted", "{}", 3, payload, "", False,
                       '{"content-type": "application/json"}', "", i, portal_id, None)  # fmt: skip

        copy_rows(
            cur,
            "portals_reception",
            ["portal_code", "received_at", "client_ip", "status_code", "outcome", "errors", "latency_ms", "payload",
             "payload_text", "payload_truncated", "headers", "idempotency_key", "lead_id", "portal_id", "replay_of_id"],
            reception_rows(), leads, "receptions",
        )  # fmt: skip
        conn.commit()
    seconds = time.monotonic() - started
    conn = psycopg.connect(url, autocommit=True)
    started_analyze = time.monotonic()
    conn.execute("VACUUM ANALYZE")
    conn.close()
    return {
        "leads": leads,
        "unassigned": statuses.count("unassigned"),
        "offers": offered,
        "zipcodes": zip_codes,
        "agencies": agencies,
        "territories": len(territory_rows),
        "seed": seed,
        "load_seconds": round(seconds, 1),
        "vacuum_analyze_seconds": round(time.monotonic() - started_analyze, 1),
        "generated_at": now.isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--unassigned", type=int, default=100_000)
    parser.add_argument("--zips", type=int, default=500)
    parser.add_argument("--agencies", type=int, default=200)
    parser.add_argument("--zips-per-agency", type=int, default=10)
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    url = os.environ["DATABASE_URL"]
    recreate_database(url)
    import run  # the bench's own set-up: migrations and the "bench" portal the leads belong to

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "leadmarket.settings", "PYTHONPATH": str(ROOT)}
    env.setdefault("DJANGO_DEBUG", "true")
    run.django(env, run.PREPARE)
    data = generate(url, **vars(args))
    STATE.write_text(json.dumps(data))
    print(json.dumps(data, indent=1)[:2000])


if __name__ == "__main__":
    main()
