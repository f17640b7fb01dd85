"""Parsing a webhook body ourselves, so every malformed input is a clear 4xx, never a 500."""

import json
import math
import re
from urllib.parse import parse_qsl

MAX_DEPTH = 32
MAX_FORM_FIELDS = 1000
# PostgreSQL cannot store NUL in text or jsonb; lone surrogates cannot be encoded as UTF-8.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
JSON_TYPES = ("application/json",)
FORM_TYPE = "application/x-www-form-urlencoded"


class UnsupportedBody(ValueError):
    """The media type is not one we read (415)."""


class InvalidBody(ValueError):
    """The body cannot be read as a JSON object or a form (400)."""


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("numbers must be finite")
    return number


def _constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _check(value, depth: int = 0) -> None:
    """Refuses documents too deep to be data and strings the database cannot store."""
    stack = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if level > MAX_DEPTH:
            raise InvalidBody(f"The body is nested more than {MAX_DEPTH} levels deep.")
        if isinstance(item, str):
            if UNSTORABLE.search(item):
                raise InvalidBody("Text must not contain NUL characters or unpaired surrogates.")
        elif isinstance(item, dict):
            for key, child in item.items():
                if UNSTORABLE.search(key):
                    raise InvalidBody("Keys must not contain NUL characters or unpaired surrogates.")
                stack.append((child, level + 1))
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)


def load_json_object(text: str) -> dict:
    try:
        value = json.loads(text, parse_float=_finite, parse_constant=_constant)
    except RecursionError as exc:
        raise InvalidBody(f"The body is nested more than {MAX_DEPTH} levels deep.") from exc
    except ValueError as exc:  # JSONDecodeError, huge integers, non-finite numbers
        raise InvalidBody(f"Malformed JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidBody("The body must be a JSON object.")
    _check(value)
    return value


def media_type(content_type: str) -> tuple[str, str]:
    main, _, params = (content_type or "").partition(";")
    charset = ""
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset":
            charset = value.strip().strip('"').lower()
    return main.strip().lower(), charset


def parse_body(body: bytes, content_type: str, *, json_form_field: str = "") -> dict:
    """The body as a dict: a JSON object, a form, or a JSON object inside one form field.

    Raises UnsupportedBody (415) or InvalidBody (400).
    """
    kind, charset = media_type(content_type)
    is_json = kind in JSON_TYPES or (kind.startswith("application/") and kind.endswith("+json"))
    if not (is_json or kind == FORM_TYPE):
        raise UnsupportedBody("Send application/json or application/x-www-form-urlencoded.")
    if charset not in ("", "utf-8", "utf8", "us-ascii"):
        raise UnsupportedBody("Only UTF-8 bodies are accepted.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidBody("The body is not valid UTF-8.") from exc
    if is_json:
        return load_json_object(text)
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidBody(f"Malformed form body: {exc}") from exc
    form = dict(pairs)
    _check(form)
    if json_form_field and json_form_field in form:
        document = load_json_object(form.pop(json_form_field))
        return {**form, **document}
    return form
