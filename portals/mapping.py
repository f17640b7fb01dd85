"""The declarative payload mapping: pure Python, no Django.

A spec maps a portal's payload onto the standard lead's fields:

    {
      "fields": {
        "zipcode":    {"path": "answers", "pick": {"key": "id", "equals": "zip", "value": "value"},
                       "transforms": ["trim", "digits"]},
        "first_name": {"path": "contact.name", "split_name": "first"},
        "last_name":  {"path": "contact.name", "split_name": "last"},
        "email":      "contact.email",                  # a bare string is a path
        "lead_type":  {"const": "auto"}
      },
      "keep_unmapped": true                             # default: unused data goes to details
    }

Paths are dotted; a numeric segment indexes a list; a one-element list is unwrapped
wherever an object or a single value is expected. `pick` selects, from the list at
`path`, the first object whose `key` equals `equals` and takes its `value` (a dotted
path inside the object, default "value"). `split_name` takes the first or the last name
of a full name ("Ann Marie Lee" -> "Ann" / "Marie Lee"; "Lee, Ann" -> "Ann" / "Lee").
Transforms run in order on text: trim, lower, upper, digits. `default` applies when the
path finds nothing. An empty spec means the payload is already a flat standard lead.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

TRANSFORMS = {
    "trim": lambda text: text.strip(),
    "lower": lambda text: text.lower(),
    "upper": lambda text: text.upper(),
    "digits": lambda text: re.sub(r"\D", "", text),
}
SPEC_KEYS = {"fields", "keep_unmapped"}
RULE_KEYS = {"path", "const", "pick", "transforms", "split_name", "default"}
PICK_KEYS = {"key", "equals", "value"}
SPLIT_PARTS = {"first", "last"}
SEGMENT = re.compile(r"^[^.\s][^.]*$")
SCALARS = (str, int, float, bool, type(None))
MISSING = object()
CONSUMED = object()


class MappingError(ValueError):
    """A value the spec asks for cannot be produced from this payload."""


@dataclass
class MappingResult:
    values: dict[str, Any]
    details: dict[str, Any]
    errors: dict[str, list[str]] = field(default_factory=dict)


def _is_path(value) -> bool:
    return isinstance(value, str) and bool(value) and all(SEGMENT.match(part) for part in value.split("."))


def validate_spec(spec, *, targets: Collection[str]) -> list[str]:
    """Every problem of `spec` as a readable sentence; an empty list means it is valid."""
    if spec is None or spec == {}:
        return []
    if not isinstance(spec, dict):
        return ["The mapping must be an object."]
    problems = [
        f"Unknown key '{key}' (allowed: {', '.join(sorted(SPEC_KEYS))})." for key in spec if key not in SPEC_KEYS
    ]
    if "keep_unmapped" in spec and not isinstance(spec["keep_unmapped"], bool):
        problems.append("keep_unmapped must be true or false.")
    fields = spec.get("fields", {})
    if not isinstance(fields, dict):
        return [*problems, "fields must be an object of lead field -> rule."]
    for target, rule in fields.items():
        where = f"fields.{target}"
        if target not in targets:
            problems.append(f"{where}: '{target}' is not a lead field (known: {', '.join(sorted(targets))}).")
        problems.extend(f"{where}: {problem}" for problem in _rule_problems(rule))
    return problems


def _rule_problems(rule) -> list[str]:
    if isinstance(rule, str):
        return [] if _is_path(rule) else [f"'{rule}' is not a dotted path."]
    if not isinstance(rule, dict):
        return ["a rule is a dotted path or an object."]
    problems = [
        f"unknown key '{key}' (allowed: {', '.join(sorted(RULE_KEYS))})." for key in rule if key not in RULE_KEYS
    ]
    if ("path" in rule) == ("const" in rule):
        problems.append("give exactly one of 'path' or 'const'.")
    if "path" in rule and not _is_path(rule["path"]):
        problems.append(f"path {rule['path']!r} is not a dotted path.")
    if "const" in rule:
        if not isinstance(rule["const"], SCALARS):
            problems.append("const must be a string, number, boolean or null.")
        if set(rule) & {"pick", "split_name", "default"}:
            problems.append("const cannot be combined with pick, split_name or default.")
    if "default" in rule and not isinstance(rule["default"], SCALARS):
        problems.append("default must be a string, number, boolean or null.")
    if "pick" in rule:
        pick = rule["pick"]
        if not isinstance(pick, dict):
            problems.append("pick must be an object {key, equals, value}.")
        else:
            problems.extend(f"pick: unknown key '{key}'." for key in pick if key not in PICK_KEYS)
            if not (isinstance(pick.get("key"), str) and pick.get("key")):
                problems.append("pick.key must name the field that identifies an entry, e.g. 'id'.")
            if "equals" not in pick or not isinstance(pick["equals"], str | int | float | bool):
                problems.append("pick.equals must be the identifying value, e.g. 'zip'.")
            if "value" in pick and not _is_path(pick["value"]):
                problems.append("pick.value must be a dotted path inside the entry.")
    if "split_name" in rule and rule["split_name"] not in SPLIT_PARTS:
        problems.append("split_name must be 'first' or 'last'.")
    transforms = rule.get("transforms", [])
    if not isinstance(transforms, list):
        problems.append("transforms must be a list.")
    else:
        problems.extend(
            f"unknown transform {name!r} (known: {', '.join(sorted(TRANSFORMS))})."
            for name in transforms
            if name not in TRANSFORMS
        )
    return problems


def _unwrap(value):
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def _walk(data, path: str, trail: tuple) -> tuple[Any, tuple]:
    """The value at the dotted `path` and the concrete location it was found at."""
    value = data
    for segment in path.split("."):
        while isinstance(value, list) and len(value) == 1 and not segment.isdigit():
            value, trail = value[0], (*trail, 0)
        if isinstance(value, dict) and segment in value:
            value, trail = value[segment], (*trail, segment)
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value, trail = value[int(segment)], (*trail, int(segment))
        else:
            return MISSING, trail
    return value, trail


def _pick(entries, pick: dict, trail: tuple) -> tuple[Any, tuple]:
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        raise MappingError("expected a list of entries to pick from.")
    wanted = str(pick["equals"])
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and str(entry.get(pick["key"])) == wanted:
            value, _ = _walk(entry, pick.get("value", "value"), ())
            # The whole entry is consumed: its id is meaningless without its value.
            return value, (*trail, index)
    return MISSING, trail


def split_full_name(name: str) -> tuple[str, str]:
    name = " ".join(name.split())
    if "," in name:
        last, _, first = name.partition(",")
        return first.strip(), last.strip()
    first, _, last = name.partition(" ")
    return first, last


def _finish(value, rule: dict):
    value = _unwrap(value)
    if isinstance(value, list | dict):
        raise MappingError("expected a single value, found " + ("a list." if isinstance(value, list) else "an object."))
    if "split_name" in rule and value is not None:
        first, last = split_full_name(str(value))
        value = first if rule["split_name"] == "first" else last
    for name in rule.get("transforms", []):
        if value is None or isinstance(value, bool):
            continue
        value = TRANSFORMS[name](value if isinstance(value, str) else str(value))
    return value


def apply_mapping(spec, payload: dict, *, targets: Collection[str]) -> MappingResult:
    """The standard lead values that `spec` extracts from `payload`, plus the unused rest.

    Assumes a spec that `validate_spec` accepted. Errors are per lead field.
    """
    if not spec or not spec.get("fields"):
        values = {key: value for key, value in payload.items() if key in targets}
        details = {key: value for key, value in payload.items() if key not in targets}
        return MappingResult(values=values, details=details if (spec or {}).get("keep_unmapped", True) else {})
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    consumed: list[tuple] = []
    for target, rule in spec["fields"].items():
        rule = {"path": rule} if isinstance(rule, str) else rule
        try:
            if "const" in rule:
                values[target] = _finish(rule["const"], rule)
                continue
            value, trail = _walk(payload, rule["path"], ())
            if value is not MISSING and "pick" in rule:
                value, trail = _pick(_unwrap(value) if isinstance(value, dict) else value, rule["pick"], trail)
            if value is MISSING or value == []:
                if "default" in rule:
                    values[target] = _finish(rule["default"], rule)
                continue
            values[target] = _finish(value, rule)
            consumed.append(trail)
        except MappingError as exc:
            errors.setdefault(target, []).append(f"{rule.get('path')}: {exc}")
    details = _without(payload, consumed) if spec.get("keep_unmapped", True) else {}
    return MappingResult(values=values, details=details, errors=errors)


def _without(payload: dict, trails: list[tuple]) -> dict:
    """A copy of `payload` without the consumed locations, pruning containers they emptied."""
    rest = copy.deepcopy(payload)
    for trail in trails:
        _mark(rest, trail)
    rest = _prune(rest)
    return {} if rest is CONSUMED else rest


def _mark(container, trail: tuple) -> None:
    # Marking first and pruning afterwards keeps list indices of other trails valid.
    for head in trail[:-1]:
        try:
            container = container[head]
        except (KeyError, IndexError, TypeError):
            return
    if trail and isinstance(container, dict | list):
        try:
            container[trail[-1]] = CONSUMED
        except (IndexError, TypeError):
            return


def _prune(value):
    """Drops consumed entries; a container left empty by that is consumed too."""
    if isinstance(value, dict):
        kept = {key: _prune(item) for key, item in value.items() if item is not CONSUMED}
        kept = {key: item for key, item in kept.items() if item is not CONSUMED}
        return CONSUMED if value and not kept else kept
    if isinstance(value, list):
        kept = [_prune(item) for item in value if item is not CONSUMED]
        kept = [item for item in kept if item is not CONSUMED]
        return CONSUMED if value and not kept else kept
    return value
