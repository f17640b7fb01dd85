"""Recording actions in the audit log. Callers run inside their own transaction."""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.forms.models import model_to_dict

from .models import AuditLog


def snapshot(
    instance: models.Model, fields: tuple[str, ...] | list[str] | None = None, *, exclude: tuple[str, ...] = ()
) -> dict:
    """The JSON-ready values of `fields` (all editable fields by default) of a model instance.

    Related objects appear as primary keys (many-to-many as sorted lists of them).
    """
    values = model_to_dict(instance, fields=fields, exclude=exclude)
    for field, value in values.items():
        if isinstance(value, list | tuple | models.QuerySet):
            values[field] = sorted(getattr(item, "pk", item) for item in value)
        elif isinstance(value, models.Model):
            values[field] = value.pk
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder))


def diff(before: dict | None, after: dict | None) -> dict:
    """{"field": {"before": old, "after": new}} for every field whose value changed."""
    before, after = before or {}, after or {}
    return {
        field: {"before": before.get(field), "after": after.get(field)}
        for field in sorted(set(before) | set(after))
        if before.get(field) != after.get(field)
    }


def record_action(
    *,
    actor,
    action: str,
    target: models.Model | None = None,
    before: dict | None = None,
    after: dict | None = None,
    metadata: dict | None = None,
    ip: str | None = None,
) -> AuditLog:
    """Writes one audit row; `actor` is a user or None for the system."""
    return AuditLog.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=str(actor) if actor is not None else "",
        action=action,
        object_type=target._meta.label_lower if target is not None else "",
        object_id=str(target.pk) if target is not None else "",
        changes=diff(before, after),
        metadata=metadata or {},
        ip=ip,
    )
