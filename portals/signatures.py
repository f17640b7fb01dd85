"""Webhook signatures over the raw body: Standard Webhooks and single-header HMAC-SHA256.

Pure functions; every comparison is constant-time. Standard Webhooks
(https://www.standardwebhooks.com): the signed content is "{id}.{timestamp}.{body}", the
key is the base64 secret after "whsec_", the header is a space-separated list of
"v1,<base64 HMAC-SHA256>" (several during a secret rotation), and the timestamp must be
within five minutes of now in either direction.
"""

import base64
import binascii
import hashlib
import hmac
import secrets

TOLERANCE_SECONDS = 5 * 60
STANDARD_PREFIX = "whsec_"


class SignatureError(ValueError):
    """The signature is missing, malformed, stale or wrong; the message says which."""


def new_standard_secret() -> str:
    return STANDARD_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _standard_key(secret: str) -> bytes:
    raw = secret.removeprefix(STANDARD_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("The portal's signing secret is not valid base64.") from exc


def sign_standard(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value a sender would put on this message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_standard(*, secret: str, headers: dict[str, str], body: bytes, now: float) -> None:
    """Raises SignatureError unless one of the v1 signatures matches and the time is fresh.

    `headers` has lower-case names.
    """
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not msg_id:
        raise SignatureError("Missing webhook-id header.")
    if not stamp:
        raise SignatureError("Missing webhook-timestamp header.")
    if not signatures:
        raise SignatureError("Missing webhook-signature header.")
    if not stamp.isascii() or not stamp.isdigit():
        raise SignatureError("webhook-timestamp must be whole seconds since the epoch.")
    timestamp = int(stamp)
    if timestamp < now - TOLERANCE_SECONDS:
        raise SignatureError("webhook-timestamp is too old.")
    if timestamp > now + TOLERANCE_SECONDS:
        raise SignatureError("webhook-timestamp is in the future.")
    expected = sign_standard(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body).encode()
    matched = False
    for candidate in signatures.split(" "):
        if candidate.startswith("v1,"):
            # No early exit: every listed signature is compared.
            matched |= hmac.compare_digest(candidate.encode(), expected)
    if not matched:
        raise SignatureError("No matching signature.")


def sign_single(*, secret: str, body: bytes, encoding: str, prefix: str = "") -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    text = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    return prefix + text


def verify_single(*, secret: str, header_value: str, body: bytes, encoding: str, prefix: str = "") -> None:
    """Raises SignatureError unless `header_value` is prefix + HMAC-SHA256(secret, body)."""
    if not header_value:
        raise SignatureError("Missing signature header.")
    value = header_value.strip()
    if prefix:
        if not value.lower().startswith(prefix.lower()):
            raise SignatureError(f"The signature must start with {prefix!r}.")
        value = value[len(prefix) :]
    expected = sign_single(secret=secret, body=body, encoding=encoding)
    if encoding == "hex":
        value, expected = value.lower(), expected.lower()
    if not hmac.compare_digest(value.encode(), expected.encode()):
        raise SignatureError("Wrong signature.")
