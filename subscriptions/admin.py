"""The staff console for plans, subscriptions and the ledger.

Changes go through the services, as in the API: plan edits are audited and refresh the
catalogue cache, cancellations bill the prorated credit. Subscriptions, territories and
ledger entries are read-only here; money is never edited by hand.
"""

from django.contrib import admin, messages
from django.db.models import Count
from django.utils import timezone

from leadmarket.api.client import client_ip
from leadmarket.errors import DomainError

from . import selectors, services
from .models import PLAN_FIELDS, LedgerEntry, Plan, Subscription, Territory


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "price_per_zipcode",
        "base_price",
        "max_zipcodes",
        "monthly_lead_cap",
        "is_active",
        "display_order",
        "live_subscriptions",
    )
    list_filter = ("is_active",)
    search_fields = ("name",)
    ordering = ("display_order", "name")
    readonly_fields = ("created_at", "updated_at")
    fields = (*PLAN_FIELDS, "created_at", "updated_at")
    actions = ("deactivate",)

    def get_queryset(self, request):
        return selectors.plans_for_staff()

    @admin.display(description="live subscriptions", ordering="live_subscriptions")
    def live_subscriptions(self, plan: Plan) -> int:
        return plan.live_subscriptions

    def save_model(self, request, obj, form, change):
        if change:
            changes = {field: form.cleaned_data[field] for field in form.changed_data if field in PLAN_FIELDS}
            services.update_plan(actor=request.user, plan_id=obj.pk, changes=changes, ip=client_ip(request))
        else:
            plan = services.create_plan(
                actor=request.user, fields={field: getattr(obj, field) for field in PLAN_FIELDS}, ip=client_ip(request)
            )
            obj.pk = plan.pk

    def delete_model(self, request, obj):
        # The admin refuses on its own to delete a plan that subscriptions refer to.
        services.delete_plan(actor=request.user, plan_id=obj.pk, ip=client_ip(request))

    def delete_queryset(self, request, queryset):
        for plan in queryset:
            services.delete_plan(actor=request.user, plan_id=plan.pk, ip=client_ip(request))

    @admin.action(description="Deactivate (hide from the catalogue; subscribers keep it)", permissions=["change"])
    def deactivate(self, request, queryset):
        for plan in queryset.filter(is_active=True):
            services.update_plan(
                actor=request.user, plan_id=plan.pk, changes={"is_active": False}, ip=client_ip(request)
            )


class TerritoryInline(admin.TabularInline):
    model = Territory
    fields = ("zipcode", "city", "state", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("zipcode",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "agency",
        "plan",
        "status",
        "zipcode_count",
        "monthly_price",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
    )
    list_select_related = ("agency", "plan")
    list_filter = ("status", "plan", "cancel_at_period_end")
    search_fields = ("agency__business_name", "agency__user__email", "territories__zipcode")
    date_hierarchy = "started_at"
    inlines = (TerritoryInline,)
    actions = ("cancel_at_period_end_action", "cancel_now_action")
    readonly_fields = (
        "agency",
        "plan",
        "status",
        "base_price",
        "price_per_zipcode",
        "started_at",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "cancelled_at",
        "ended_at",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(zipcode_total=Count("territories"))

    @admin.display(description="ZIP codes", ordering="zipcode_total")
    def zipcode_count(self, subscription: Subscription) -> int:
        return subscription.zipcode_total

    @admin.display(description="monthly price")
    def monthly_price(self, subscription: Subscription):
        return subscription.monthly_price_for(subscription.zipcode_total)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # The list keeps its actions (they call the services); one subscription is only viewed.
        return obj is None and super().has_change_permission(request)

    def _cancel(self, request, queryset, *, immediate: bool):
        now = timezone.now()
        for subscription in queryset.live().select_related("agency"):
            try:
                services.cancel_subscription(
                    agency=subscription.agency, immediate=immediate, now=now, actor=request.user, ip=client_ip(request)
                )
            except DomainError as exc:
                self.message_user(request, f"{subscription.agency}: {exc.message}", messages.WARNING)

    @admin.action(description="Cancel at period end", permissions=["change"])
    def cancel_at_period_end_action(self, request, queryset):
        self._cancel(request, queryset, immediate=False)

    @admin.action(description="Cancel now with a prorated credit", permissions=["change"])
    def cancel_now_action(self, request, queryset):
        self._cancel(request, queryset, immediate=True)


@admin.register(Territory)
class TerritoryAdmin(admin.ModelAdmin):
    """Read-only: agencies add and remove ZIP codes through the app (billed by the services)."""

    list_display = ("zipcode", "city", "state", "agency", "subscription_status", "created_at")
    list_select_related = ("subscription__agency",)
    list_filter = ("subscription__status", "state")
    search_fields = ("=zipcode", "city", "subscription__agency__business_name")
    fields = ("subscription", "zipcode", "city", "state", "created_at")
    readonly_fields = fields

    @admin.display(description="agency", ordering="subscription__agency__business_name")
    def agency(self, territory: Territory):
        return territory.subscription.agency

    @admin.display(description="subscription", ordering="subscription__status")
    def subscription_status(self, territory: Territory) -> str:
        return territory.subscription.get_status_display()

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    """Read-only: the ledger is corrected with new entries, never edited."""

    list_display = ("created_at", "agency", "kind", "reason", "amount", "description", "period_start", "period_end")
    list_select_related = ("agency",)
    list_filter = ("kind", "reason", "created_at")
    search_fields = ("agency__business_name", "agency__user__email", "reference", "description")
    date_hierarchy = "created_at"
    readonly_fields = (
        "agency",
        "subscription",
        "kind",
        "reason",
        "reference",
        "amount",
        "description",
        "period_start",
        "period_end",
        "created_at",
    )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
