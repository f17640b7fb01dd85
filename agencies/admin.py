from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from audit.admin import AuditedModelAdmin
from leadmarket.api.client import client_ip
from subscriptions.models import LedgerEntry

from . import selectors, services
from .models import Agency, AgencyStatus, Device, Notification, User

admin.site.unregister(Group)


@admin.register(Group)
class RoleAdmin(AuditedModelAdmin, DjangoGroupAdmin):
    """Roles (groups): the API's `/api/admin/roles` and this page change the same rows, audited."""

    list_display = ("name", "permission_count")
    search_fields = ("name",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(permission_total=Count("permissions"))

    @admin.display(description="permissions", ordering="permission_total")
    def permission_count(self, role: Group) -> int:
        return role.permission_total


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


class HasLiveSubscriptionFilter(admin.SimpleListFilter):
    title = "live subscription"
    parameter_name = "live_subscription"

    def lookups(self, request, model_admin):
        return (("yes", "Yes"), ("no", "No"))

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return selectors.with_live_subscription(queryset, self.value() == "yes")
        return queryset


class LedgerEntryInline(admin.TabularInline):
    """The agency's account, newest first; money is never edited by hand."""

    model = LedgerEntry
    fields = ("created_at", "kind", "reason", "amount", "description", "reference", "period_start", "period_end")
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Agency)
class AgencyAdmin(admin.ModelAdmin):
    """Profile edits and status changes go through the services, like the API: the status is
    not a form field, it changes only through the suspend/reactivate actions, so suspending
    always moves the agency's live offers on. Agencies register themselves; none are added
    or deleted here."""

    list_display = (
        "business_name",
        "user_email",
        "status",
        "accepting_leads",
        "plan",
        "zipcodes",
        "leads_awaiting",
        "leads_accepted",
        "created_at",
    )
    list_select_related = ("user",)
    list_filter = ("status", "accepting_leads", HasLiveSubscriptionFilter, "created_at")
    search_fields = ("business_name", "contact_name", "user__email", "phone")
    date_hierarchy = "created_at"
    fields = ("user", "business_name", "contact_name", "phone", "accepting_leads", "status", "balance", "subscription")
    readonly_fields = ("user", "status", "balance", "subscription", "created_at", "updated_at")
    inlines = (LedgerEntryInline,)
    actions = ("suspend", "reactivate")

    def get_queryset(self, request):
        return selectors.admin_agencies()

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        changes = {field: form.cleaned_data[field] for field in form.changed_data if field in services.PROFILE_FIELDS}
        if changes:
            services.update_agency(
                agency_id=obj.pk, changes=changes, actor=request.user, now=timezone.now(), ip=client_ip(request)
            )

    @admin.display(description="email", ordering="user__email")
    def user_email(self, agency: Agency) -> str:
        return agency.user.email

    @admin.display(description="plan", ordering="live_plan_name")
    def plan(self, agency: Agency) -> str:
        return agency.live_plan_name or "-"

    @admin.display(description="ZIP codes", ordering="live_zipcode_count")
    def zipcodes(self, agency: Agency) -> int:
        return agency.live_zipcode_count

    @admin.display(description="awaiting", ordering="leads_awaiting")
    def leads_awaiting(self, agency: Agency) -> int:
        return agency.leads_awaiting

    @admin.display(description="accepted", ordering="leads_accepted")
    def leads_accepted(self, agency: Agency) -> int:
        return agency.leads_accepted

    @admin.display(description="balance (USD, positive = owed)")
    def balance(self, agency: Agency):
        return LedgerEntry.objects.for_agency(agency).balance() if agency.pk else "-"

    @admin.display(description="live subscription")
    def subscription(self, agency: Agency):
        if not agency.pk or agency.live_subscription_id is None:
            return "-"
        return format_html(
            '<a href="{}">{} · {} ZIP codes · until {}</a>',
            reverse("admin:subscriptions_subscription_change", args=[agency.live_subscription_id]),
            agency.live_plan_name,
            agency.live_zipcode_count,
            agency.live_period_end.strftime("%Y-%m-%d"),
        )

    @admin.action(
        description="Suspend: out of rotation now, live offers move to the next agency", permissions=["change"]
    )
    def suspend(self, request, queryset):
        self._set_status(request, queryset, AgencyStatus.SUSPENDED)

    @admin.action(description="Reactivate: back in rotation", permissions=["change"])
    def reactivate(self, request, queryset):
        self._set_status(request, queryset, AgencyStatus.ACTIVE)

    def _set_status(self, request, queryset, status: AgencyStatus):
        now, ip = timezone.now(), client_ip(request)
        for agency_id in queryset.order_by("id").values_list("id", flat=True):
            agency = services.set_agency_status(agency_id=agency_id, status=status, actor=request.user, now=now, ip=ip)
            self.message_user(request, f"{agency}: {agency.get_status_display().lower()}.", messages.SUCCESS)


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
