"""Signatures: the pure verifiers and the webhook's 401s."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from portals.models import Reception
from portals.signatures import SignatureError, sign_standard, verify_single, verify_standard
from portals.tests.factories import make_portal
from portals.tests.helpers import LEAD, WEBHOOK, assert_failure, assert_success

# The published example of the Standard Webhooks reference libraries.
KAT_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KAT_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
KAT_TIMESTAMP = 1614265330
KAT_BODY = b'{"test": 2432232314}'
KAT_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def kat_headers(**overrides):
    return {"webhook-id": KAT_ID, "webhook-timestamp": str(KAT_TIMESTAMP), "webhook-signature": KAT_SIGNATURE} | (
        overrides
    )


def test_standard_webhooks_known_answer_vector():
    assert sign_standard(secret=KAT_SECRET, msg_id=KAT_ID, timestamp=KAT_TIMESTAMP, body=KAT_BODY) == KAT_SIGNATURE
    verify_standard(secret=KAT_SECRET, headers=kat_headers(), body=KAT_BODY, now=KAT_TIMESTAMP)


@pytest.mark.parametrize(
    ("headers", "body", "now", "reason"),
    [
        (kat_headers(**{"webhook-id": ""}), KAT_BODY, KAT_TIMESTAMP, "webhook-id"),
        (kat_headers(**{"webhook-timestamp": ""}), KAT_BODY, KAT_TIMESTAMP, "webhook-timestamp"),
        (kat_headers(**{"webhook-signature": ""}), KAT_BODY, KAT_TIMESTAMP, "webhook-signature"),
        (kat_headers(**{"webhook-timestamp": "16142653x0"}), KAT_BODY, KAT_TIMESTAMP, "whole seconds"),
        (kat_headers(), KAT_BODY, KAT_TIMESTAMP + 301, "too old"),
        (kat_headers(), KAT_BODY, KAT_TIMESTAMP - 301, "future"),
        (kat_headers(), b'{"test": 2432232315}', KAT_TIMESTAMP, "No matching"),
        (kat_headers(**{"webhook-signature": "v2," + KAT_SIGNATURE[3:]}), KAT_BODY, KAT_TIMESTAMP, "No matching"),
    ],
    ids=["missing-id", "missing-timestamp", "missing-signature", "non-numeric", "stale", "future", "flipped", "v2"],
)
def test_standard_webhooks_failure_modes(headers, body, now, reason):
    with pytest.raises(SignatureError, match=reason):
        verify_standard(secret=KAT_SECRET, headers=headers, body=body, now=now)


def test_standard_webhooks_tolerates_five_minutes_both_ways():
    verify_standard(secret=KAT_SECRET, headers=kat_headers(), body=KAT_BODY, now=KAT_TIMESTAMP + 300)
    verify_standard(secret=KAT_SECRET, headers=kat_headers(), body=KAT_BODY, now=KAT_TIMESTAMP - 300)


def test_standard_webhooks_accepts_any_of_several_signatures_during_rotation():
    old = sign_standard(
        secret="whsec_" + base64.b64encode(b"o" * 32).decode(), msg_id=KAT_ID, timestamp=KAT_TIMESTAMP, body=KAT_BODY
    )

    verify_standard(
        secret=KAT_SECRET,
        headers=kat_headers(**{"webhook-signature": f"{old} {KAT_SIGNATURE}"}),
        body=KAT_BODY,
        now=KAT_TIMESTAMP,
    )
    with pytest.raises(SignatureError):
        verify_standard(
            secret=KAT_SECRET,
            headers=kat_headers(**{"webhook-signature": f"{old} v1,AAAA"}),
            body=KAT_BODY,
            now=KAT_TIMESTAMP,
        )


@pytest.mark.parametrize(
    ("encoding", "prefix", "make"),
    [
        ("hex", "", lambda digest: digest.hex()),
        ("hex", "sha256=", lambda digest: "sha256=" + digest.hex()),
        ("hex", "sha256=", lambda digest: "sha256=" + digest.hex().upper()),
        ("base64", "", lambda digest: base64.b64encode(digest).decode()),
        ("base64", "v1=", lambda digest: "v1=" + base64.b64encode(digest).decode()),
    ],
    ids=["hex", "github-style", "hex-uppercase", "shopify-style", "base64-prefixed"],
)
def test_single_header_styles(encoding, prefix, make):
    body = b'{"a": 1}'
    digest = hmac.new(b"s3cret", body, hashlib.sha256).digest()

    verify_single(secret="s3cret", header_value=make(digest), body=body, encoding=encoding, prefix=prefix)
    with pytest.raises(SignatureError):
        verify_single(secret="s3cret", header_value=make(digest), body=body + b" ", encoding=encoding, prefix=prefix)


def test_single_header_missing_or_without_prefix_is_refused():
    with pytest.raises(SignatureError, match="Missing"):
        verify_single(secret="s", header_value="", body=b"{}", encoding="hex", prefix="")
    with pytest.raises(SignatureError, match="start with"):
        verify_single(secret="s", header_value="abc", body=b"{}", encoding="hex", prefix="sha256=")


# --- through the webhook -------------------------------------------------------------------


def standard_post(client, code, body: bytes, secret: str, *, key=None, stamp=None, msg_id="msg_1", signature=None):
    stamp = int(time.time()) if stamp is None else stamp
    signature = signature or sign_standard(secret=secret, msg_id=msg_id, timestamp=stamp, body=body)
    headers = {"HTTP_WEBHOOK_ID": msg_id, "HTTP_WEBHOOK_TIMESTAMP": str(stamp), "HTTP_WEBHOOK_SIGNATURE": signature}
    if key:
        headers["HTTP_X_API_KEY"] = key
    return client.post(WEBHOOK.format(code), data=body, content_type="application/json", **headers)


@pytest.mark.django_db
def test_standard_webhooks_portal_without_key_accepts_a_signed_lead_and_uses_the_id_for_idempotency(api_client):
    _portal, _ = make_portal("sw", key_location="none", signature_scheme="standard_webhooks", signing_secret=KAT_SECRET)
    body = json.dumps(LEAD | {"external_id": ""}).encode()

    first = assert_success(standard_post(api_client, "sw", body, KAT_SECRET, msg_id="msg_42"), 201)
    again = assert_success(standard_post(api_client, "sw", body, KAT_SECRET, msg_id="msg_42"), 201)

    assert first["lead_id"] == again["lead_id"]


@pytest.mark.django_db
@pytest.mark.parametrize("variant", ["missing-signature", "stale", "future", "flipped-byte", "wrong-secret"])
def test_standard_webhooks_failures_are_401_and_audited(api_client, variant):
    make_portal("sw", key_location="none", signature_scheme="standard_webhooks", signing_secret=KAT_SECRET)
    body = json.dumps(LEAD).encode()
    now = int(time.time())
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    kwargs = {
        "missing-signature": {"signature": " "},
        "stale": {"stamp": now - 400},
        "future": {"stamp": now + 400},
        "flipped-byte": {
            "signature": sign_standard(
                secret=KAT_SECRET, msg_id="msg_1", timestamp=now, body=body.replace(b"Ada", b"Adb")
            ),
            "stamp": now,
        },
        "wrong-secret": {
            "signature": sign_standard(secret=other, msg_id="msg_1", timestamp=now, body=body),
            "stamp": now,
        },
    }[variant]

    errors = assert_failure(standard_post(api_client, "sw", body, KAT_SECRET, **kwargs), 401)["errors"]

    assert "signature" in errors
    assert Reception.objects.get().outcome == "unauthorized"


@pytest.mark.django_db
def test_single_header_portal_requires_key_and_signature(api_client):
    _portal, key = make_portal(
        "gh",
        signature_scheme="single_header",
        signature_header="X-Hub-Signature-256",
        signature_prefix="sha256=",
        signing_secret="topsecret",
    )
    body = json.dumps(LEAD).encode()
    good = "sha256=" + hmac.new(b"topsecret", body, hashlib.sha256).hexdigest()

    def send(signature, api_key=key):
        return api_client.post(
            WEBHOOK.format("gh"),
            data=body,
            content_type="application/json",
            HTTP_X_API_KEY=api_key,
            HTTP_X_HUB_SIGNATURE_256=signature,
        )

    assert_failure(send(""), 401)
    assert_failure(send("sha256=" + "0" * 64), 401)
    assert_failure(send(good, api_key="wrong"), 401)
    assert_success(send(good), 201)


@pytest.mark.django_db
def test_signing_secret_is_generated_and_returned_once(staff_client, staff_user):
    from django.contrib.auth.models import Permission

    staff_user.user_permissions.add(*Permission.objects.filter(codename__in=["add_portal", "view_portal"]))

    created = staff_client.post(
        "/api/admin/portals", {"code": "sig", "name": "Sig", "signature_scheme": "standard_webhooks"}, format="json"
    )
    data = assert_success(created, 201)
    shown = staff_client.get(f"/api/admin/portals/{data['portal']['id']}")

    assert data["signing_secret"].startswith("whsec_")
    assert data["signing_secret"] not in shown.content.decode()
    assert assert_success(shown, 200)["has_signing_secret"] is True
