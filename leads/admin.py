"""Leads, offers and the rotation in the staff console, and the distribution dashboard.

Leads and offers are read-only: they change through the distribution engine, which the
"redistribute" action calls (the same `assign_lead` as the admin API, audited there).
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from leadmarket.api.client import client_ip
from leadmarket.errors import DomainError

from . import distribution, selectors
from .models import Lead, Offer, RotationCursor

CHART_WIDTH, CHART_HEIGHT, CHART_BOTTOM = 700, 220, 30


class ReadOnlyAdmin(admin.ModelAdmin):
    """Every field shown read-only; nothing added, changed or deleted by hand."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class OfferInline(admin.TabularInline):
    model = Offer
    fields = (
        "agency",
        "status",
        "offered_at",
        "expires_at",
        "responded_at",
        "reject_reason",
        "assigned_by",
        "decision",
    )
    readonly_fields = fields
    ordering = ("offered_at", "id")
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("agency", "assigned_by")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "received_at",
        "portal",
        "status",
        "zipcode",
        "lead_type",
        "current_agency",
        "is_test",
        "duplicate_of",
    )
    list_select_related = ("portal",)
    list_filter = ("status", "portal", "is_test", "received_at")
    search_fields = ("=id", "email", "phone", "zipcode", "external_id", "last_name", "first_name")
    date_hierarchy = "received_at"
    raw_id_fields = ("duplicate_of", "portal")
    inlines = (OfferInline,)
    actions = ("redistribute",)

    def get_queryset(self, request):
        return selectors.admin_leads()

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # The list keeps its actions (they call the engine); one lead is only viewed.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_distribute_permission(self, request):
        return request.user.has_perm("leads.distribute_lead")

    @admin.display(description="agency now", ordering="current_agency_name")
    def current_agency(self, lead: Lead) -> str:
        return lead.current_agency_name or "-"

    @admin.action(description="Redistribute: offer to the next agency in rotation", permissions=["distribute"])
    def redistribute(self, request, queryset):
        now, ip = timezone.now(), client_ip(request)
        for lead_id in queryset.order_by("id").values_list("id", flat=True):
            try:
                lead = distribution.assign_lead(lead_id=lead_id, actor=request.user, now=now, ip=ip)
            except DomainError as exc:
                self.message_user(request, f"Lead {lead_id}: {exc.message}", messages.WARNING)
                continue
            holder = Offer.objects.live().filter(lead_id=lead_id).select_related("agency").first()
            if holder:
                self.message_user(request, f"Lead {lead_id} offered to {holder.agency}.", messages.SUCCESS)
            else:
                self.message_user(request, f"Lead {lead_id}: no eligible agency, {lead.status}.", messages.WARNING)

    def get_urls(self):
        dashboard = path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="leads_dashboard")
        return [dashboard, *super().get_urls()]

    def dashboard_view(self, request):
        if not request.user.has_perm("leads.view_lead"):
            raise PermissionDenied
        figures = selectors.dashboard_figures(now=timezone.now())
        context = {
            **self.admin_site.each_context(request),
            "title": "Distribution dashboard",
            "figures": figures,
            "chart": bar_chart(figures.days),
            "leads_url": reverse("admin:leads_lead_changelist"),
        }
        return TemplateResponse(request, "admin/leads/dashboard.html", context)


def bar_chart(days: list[dict]) -> dict:
    """The geometry of an SVG bar chart of leads received and accepted per day (no script)."""
    peak = max([day["received"] for day in days] + [1])
    slot = CHART_WIDTH / max(len(days), 1)
    plot = CHART_HEIGHT - CHART_BOTTOM
    bars = []
    for n, day in enumerate(days):
        x = n * slot
        received = round(plot * day["received"] / peak, 1)
        accepted = round(plot * day["accepted"] / peak, 1)
        bars.append(
            {
                **day,
                "x": round(x + slot * 0.15, 1),
                "x_accepted": round(x + slot * 0.5, 1),
                "width": round(slot * 0.35, 1),
                "y": round(plot - received, 1),
                "height": received,
                "y_accepted": round(plot - accepted, 1),
                "height_accepted": accepted,
                "label_x": round(x + slot / 2, 1),
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "baseline": plot,
        "label_y": plot + 18,
        "peak": peak,
        "bars": bars,
    }


@admin.register(Offer)
class OfferAdmin(ReadOnlyAdmin):
    list_display = ("id", "lead_link", "agency", "status", "offered_at", "expires_at", "responded_at", "reject_reason")
    list_select_related = ("agency", "lead")
    list_filter = ("status", "reject_reason", "offered_at")
    search_fields = ("=lead__id", "agency__business_name", "agency__user__email", "lead__zipcode")
    date_hierarchy = "offered_at"

    @admin.display(description="lead", ordering="lead_id")
    def lead_link(self, offer: Offer):
        return format_html('<a href="{}">{}</a>', reverse("admin:leads_lead_change", args=[offer.lead_id]), offer.lead)


@admin.register(RotationCursor)
class RotationCursorAdmin(ReadOnlyAdmin):
    list_display = ("zipcode", "last_agency_id", "offers_made", "updated_at")
    search_fields = ("zipcode",)
    ordering = ("zipcode",)
