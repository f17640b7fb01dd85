"""The README's first run: embedded defaults (SQLite, in-process tasks, local cache), demo
data, and the printed first curl ending in an offered lead. Runs in a subprocess so that
none of the test settings (PostgreSQL, Redis) leak in."""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import io, json, re, django
django.setup()
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
out = io.StringIO()
call_command("demo_data", stdout=out)
call_command("demo_data", stdout=io.StringIO())  # idempotent; rotates the demo key
out = io.StringIO()
call_command("demo_data", stdout=out)
text = out.getvalue()
key = re.search(r"X-API-Key: (\S+)'", text).group(1)
body = re.search(r"-d '(.+)'", text).group(1)
client = Client()
created = client.post("/api/webhooks/demo", body, content_type="application/json", HTTP_X_API_KEY=key)
again = json.dumps(json.loads(body) | {"external_id": "first-run-again"})  # the same person: a duplicate
client.post("/api/webhooks/demo", again, content_type="application/json", HTTP_X_API_KEY=key)
from portals.models import Reception
receptions = [list(row) for row in Reception.objects.order_by("id").values_list("outcome", "lead__status")]
login = client.post("/api/v1/agencies/login", {"email": "north@example.com", "password": "demo-agency-password"},
                    content_type="application/json").json()["data"]["access"]
north = client.get("/api/mobile/leads", HTTP_AUTHORIZATION=f"Bearer {login}").json()["data"]["count"]
login = client.post("/api/v1/agencies/login", {"email": "south@example.com", "password": "demo-agency-password"},
                    content_type="application/json").json()["data"]["access"]
south = client.get("/api/mobile/leads", HTTP_AUTHORIZATION=f"Bearer {login}").json()["data"]["count"]
print(json.dumps({"status": created.status_code, "offered_to": [north, south], "receptions": receptions}))
"""


def test_demo_on_embedded_defaults_offers_the_first_curls_lead(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'first-run.sqlite3'}",
        DJANGO_DEBUG="1",
        DJANGO_SETTINGS_MODULE="leadmarket.settings",
    )

    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=240)

    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "status": 201,
        "offered_to": [1, 0],
        "receptions": [["accepted", "offered"], ["duplicate_lead", "duplicate"]],
    }
