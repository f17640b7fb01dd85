"""The standard lead: its fields and the validation every lead passes, whatever its source."""

import ipaddress
from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.utils.dateparse import parse_date, parse_datetime

from leadmarket.phones import normalize_phone
from leadmarket.zipcodes import InvalidZip, lookup_zip

TEXT_LIMITS = {
    "first_name": 100,
    "last_name": 100,
    "address": 255,
    "city": 100,
    "lead_type": 50,
    "consent_text": 5000,
    "external_id": 255,
}
LEAD_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "zipcode",
    "address",
    "city",
    "state",
    "lead_type",
    "details",
    "tcpa_consent",
    "consent_text",
    "consented_at",
    "consent_ip",
    "certificate_url",
    "external_id",
    "is_test",
)
TRUE_WORDS = {"true", "1", "yes", "y", "on", "t"}
FALSE_WORDS = {"false", "0", "no", "n", "off", "f", ""}
_email = EmailValidator()
_url = URLValidator(schemes=["http", "https"])


def _text(value, limit: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("Enter text.")
    text = str(value).strip()
    if len(text) > limit:
        raise ValueError(f"At most {limit} characters.")
    return text


def _flag(value) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError("Enter true or false.")


def _moment(value) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError("Enter an ISO 8601 date and time.")
    moment = parse_datetime(value.strip())
    if moment is None and (day := parse_date(value.strip())) is not None:
        moment = datetime(day.year, day.month, day.day)
    if moment is None:
        raise ValueError("Enter an ISO 8601 date and time.")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _zipcode(value):
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:05d}"
    if not isinstance(value, str) or not value.strip():
        raise ValueError("A valid US ZIP code is required.")
    try:
        return lookup_zip(value)
    except InvalidZip as exc:
        raise ValueError(str(exc)) from exc


def normalize_lead(values: dict, *, default_lead_type: str = "") -> dict:
    """The standard lead built from mapped `values`, or ValidationError with field errors.

    A lead needs a real US ZIP code and a phone or an email; city and state come from the
    ZIP when missing; the phone is stored in E.164.
    """
    errors: dict[str, list[str]] = {}
    lead: dict = {}

    def field(name, convert):
        try:
            lead[name] = convert(values.get(name))
        except (ValueError, ValidationError) as exc:
            errors.setdefault(name, []).extend(exc.messages if isinstance(exc, ValidationError) else [str(exc)])

    for name, limit in TEXT_LIMITS.items():
        field(name, lambda value, limit=limit: _text(value, limit))
    field("email", _checked_email)
    field("phone", lambda value: normalize_phone(_text(value, 32)) if _text(value, 32) else "")
    field("certificate_url", _checked_url)
    field("consent_ip", _checked_ip)
    field("consented_at", _moment)
    field("tcpa_consent", _flag)
    field("is_test", _flag)
    field("state", lambda value: _text(value, 2).upper())
    try:
        info = _zipcode(values.get("zipcode"))
        lead.update(zipcode=info.zipcode)
        lead["city"] = lead.get("city") or info.city
        lead["state"] = lead.get("state") or info.state
    except ValueError as exc:
        errors["zipcode"] = [str(exc)]
    details = values.get("details", {})
    if details in (None, ""):
        details = {}
    if not isinstance(details, dict):
        errors["details"] = ["Enter an object."]
    lead["details"] = details if isinstance(details, dict) else {}
    if not errors.get("email") and not errors.get("phone") and not lead.get("email") and not lead.get("phone"):
        errors["non_field_errors"] = ["A lead needs a phone number or an email address."]
    if errors:
        raise ValidationError(errors)
    lead["lead_type"] = lead["lead_type"] or default_lead_type
    return lead


def _checked_email(value) -> str:
    email = _text(value, 254)
    if email:
        _email(email)
        local, _, domain = email.rpartition("@")
        email = f"{local}@{domain.lower()}"
    return email


def _checked_url(value) -> str:
    url = _text(value, 500)
    if url:
        _url(url)
    return url


def _checked_ip(value) -> str | None:
    text = _text(value, 45)
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise ValueError("Enter a valid IPv4 or IPv6 address.") from exc
