from django.contrib import admin

from leadmarket.api.client import client_ip

from .models import AuditLog
from .services import record_action, snapshot


class AuditedModelAdmin(admin.ModelAdmin):
    """Writes through the Django admin leave the same audit rows as the API: who, what,
    which object, the before/after difference and the client address, in the admin's
    own transaction. Admin actions call services, which audit themselves.
    """

    audit_exclude: tuple[str, ...] = ()

    def _snapshot(self, obj) -> dict:
        return snapshot(obj, exclude=self.audit_exclude)

    def _action(self, obj, verb: str) -> str:
        return f"{obj._meta.model_name}.{verb}_in_admin"

    def save_model(self, request, obj, form, change):
        before = self._snapshot(type(obj).objects.get(pk=obj.pk)) if change else None
        request._audit_before = before
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        record_action(
            actor=request.user,
            action=self._action(obj, "changed" if change else "created"),
            target=obj,
            before=getattr(request, "_audit_before", None),
            after=self._snapshot(obj),
            ip=client_ip(request),
        )

    def delete_model(self, request, obj):
        record_action(
            actor=request.user,
            action=self._action(obj, "deleted"),
            target=obj,
            before=self._snapshot(obj),
            ip=client_ip(request),
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Read-only: audit records are never edited or deleted."""

    list_display = ("created_at", "action", "actor_label", "object_type", "object_id", "ip")
    list_filter = ("action", "object_type")
    search_fields = ("actor_label", "object_id", "action")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
