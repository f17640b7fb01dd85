from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from audit.admin import AuditedModelAdmin

from .models import Agency, Device, Notification, User


@admin.register(User)
class UserAdmin(AuditedModelAdmin, DjangoUserAdmin):
    audit_exclude = ("password",)
    ordering = ("email",)
    list_display = ("email", "full_name", "is_staff", "is_superuser", "is_active", "created_at")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    search_fields = ("email", "full_name")
    readonly_fields = ("created_at", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "created_at")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2", "is_staff")}),)


@admin.register(Agency)
class AgencyAdmin(AuditedModelAdmin):
    list_display = ("business_name", "user_email", "contact_name", "phone", "status", "accepting_leads", "created_at")
    list_select_related = ("user",)
    list_filter = ("status", "accepting_leads", "created_at")
    search_fields = ("business_name", "contact_name", "user__email", "phone")
    readonly_fields = ("created_at", "updated_at")
    raw_id_fields = ("user",)
    date_hierarchy = "created_at"

    @admin.display(description="email", ordering="user__email")
    def user_email(self, agency: Agency) -> str:
        return agency.user.email


@admin.register(Device)
class DeviceAdmin(AuditedModelAdmin):
    list_display = ("agency", "platform", "is_active", "last_registered_at", "deactivated_at", "deactivation_reason")
    list_select_related = ("agency",)
    list_filter = ("platform", "is_active")
    search_fields = ("agency__business_name", "token")
    raw_id_fields = ("agency",)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Read-only: the inbox and what happened to each push."""

    list_display = ("created_at", "agency", "kind", "title", "push_status", "push_attempts", "pushed_at", "read_at")
    list_select_related = ("agency",)
    list_filter = ("kind", "push_status", ("read_at", admin.EmptyFieldListFilter))
    search_fields = ("agency__business_name", "title")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
