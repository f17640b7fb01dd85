"""The demo portal: created once, with a fresh API key printed on every run (keys are
stored as hashes, so the previous one cannot be shown again)."""

import json
import shlex

from django.utils import timezone

from . import services
from .models import Portal

DEMO_CODE = "demo"
DEMO_LEAD = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "zipcode": "10001",
    "lead_type": "auto",
    "tcpa_consent": True,
}


def ensure_demo_portal(*, actor, base_url: str, write=print) -> str:
    """Creates the demo portal if missing, issues a new key (revoking older ones) and prints
    a ready-to-run curl. Returns the key."""
    now = timezone.now()
    portal = Portal.objects.filter(code=DEMO_CODE).first()
    if portal is None:
        data = {"code": DEMO_CODE, "name": "Demo portal", "default_lead_type": "auto", "rate_limit": "600/m"}
        key = services.create_portal(actor=actor, data=data, now=now).api_key
    else:
        key = services.rotate_portal_key(actor=actor, portal_id=portal.pk, now=now, revoke_previous=True).api_key
    url = f"{base_url}/api/webhooks/{DEMO_CODE}"
    # A new external id and email on every run: the same ones again would be a re-send or a duplicate.
    stamp = now.strftime("%Y%m%d%H%M%S")
    lead = {"external_id": f"demo-{stamp}", "email": f"ada+{stamp}@example.com", **DEMO_LEAD}
    write(f"  Demo portal '{DEMO_CODE}': API key {key}  (a new key on every run; older ones are revoked)")
    write("  First lead:")
    write(
        f"    curl -s -X POST {url} -H 'Content-Type: application/json' -H 'X-API-Key: {key}' "
        f"-d {shlex.quote(json.dumps(lead))}"
    )
    return key
