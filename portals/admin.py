import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from leadmarket.api.client import client_ip
from leads.standard import LEAD_FIELDS

from . import mapping as mapping_engine
from . import services
from .models import Portal, PortalKey, Reception

RECENT_RECEPTIONS = 20


class PortalForm(forms.ModelForm):
    class Meta:
        model = Portal
        fields = services.CONFIG_FIELDS

    def clean_mapping(self):
        spec = self.cleaned_data.get("mapping") or {}
        problems = mapping_engine.validate_spec(spec, targets=LEAD_FIELDS)
        if problems:
            raise ValidationError(problems)
        return spec


class PortalKeyInline(admin.TabularInline):
    model = PortalKey
    fields = ("prefix", "created_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-created_at", "-id")

    def has_add_permission(self, request, obj=None):
        return False


class PreviewForm(forms.Form):
    payload = forms.JSONField(widget=forms.Textarea(attrs={"rows": 14, "cols": 90}), help_text="Sample body (JSON).")
    mapping = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 10, "cols": 90}),
        help_text="Leave empty to use the saved mapping.",
    )


@admin.register(Portal)
class PortalAdmin(admin.ModelAdmin):
    form = PortalForm
    list_display = ("code", "name", "is_active", "default_lead_type", "rate_limit", "signature_scheme", "updated_at")
    list_filter = ("is_active", "signature_scheme", "key_location")
    search_fields = ("code", "name")
    readonly_fields = ("tools", "recent_receptions", "created_at", "updated_at")
    inlines = [PortalKeyInline]
    actions = ["rotate_key"]

    def get_fields(self, request, obj=None):
        return (*services.CONFIG_FIELDS, "tools", "recent_receptions", "created_at", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "code") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in services.CONFIG_FIELDS if name in form.cleaned_data}
        now = timezone.now()
        if change:
            services.update_portal(actor=request.user, portal_id=obj.pk, data=data, now=now, ip=client_ip(request))
        else:
            issued = services.create_portal(actor=request.user, data=data, now=now, ip=client_ip(request))
            obj.pk = issued.portal.pk
            self._show_credentials(request, issued)

    def _show_credentials(self, request, issued):
        text = f"Portal {issued.portal.code}: API key {issued.api_key} (shown once)."
        if issued.signing_secret:
            text += f" Signing secret {issued.signing_secret} (shown once)."
        messages.warning(request, text)

    @admin.action(description="Rotate the API key (the previous key stays live)", permissions=["rotate"])
    def rotate_key(self, request, queryset):
        for portal in queryset.order_by("code", "id"):
            issued = services.rotate_portal_key(
                actor=request.user, portal_id=portal.pk, now=timezone.now(), ip=client_ip(request)
            )
            self._show_credentials(request, issued)

    def has_rotate_permission(self, request):
        return request.user.has_perm("portals.rotate_portal_key")

    @admin.display(description="tools")
    def tools(self, portal):
        if not portal.pk:
            return "-"
        preview = reverse("admin:portals_portal_preview", args=[portal.pk])
        receptions = reverse("admin:portals_reception_changelist") + f"?portal__id__exact={portal.pk}"
        return format_html(
            '<a href="{}">Preview the mapping</a> · <a href="{}">All receptions</a>', preview, receptions
        )

    @admin.display(description="recent receptions")
    def recent_receptions(self, portal):
        if not portal.pk:
            return "-"
        rows = portal.receptions.order_by("-received_at", "-id")[:RECENT_RECEPTIONS]
        return format_html(
            "<table>{}</table>",
            format_html_join(
                "",
                '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{} ms</td></tr>',
                (
                    (
                        reverse("admin:portals_reception_change", args=[r.pk]),
                        r.received_at.strftime("%Y-%m-%d %H:%M:%S"),
                        r.status_code,
                        r.outcome,
                        r.latency_ms,
                    )
                    for r in rows
                ),
            ),
        )

    def get_urls(self):
        preview = path(
            "<int:portal_id>/preview/", self.admin_site.admin_view(self.preview_view), name="portals_portal_preview"
        )
        return [preview, *super().get_urls()]

    def preview_view(self, request, portal_id: int):
        if not request.user.has_perm("portals.preview_portal_mapping"):
            raise PermissionDenied
        portal = get_object_or_404(Portal, pk=portal_id)
        form = PreviewForm(request.POST or None, initial={"mapping": portal.mapping or None})
        result = None
        if request.method == "POST" and form.is_valid():
            try:
                mapped = services.preview_mapping(
                    portal_id=portal.pk, payload=form.cleaned_data["payload"], spec=form.cleaned_data["mapping"]
                )
                lead = mapped.values
                result = {
                    "valid": not mapped.errors,
                    "lead": json.dumps(lead, indent=2, default=str) if lead else "",
                    "errors": json.dumps(mapped.errors, indent=2),
                }
            except ValidationError as exc:
                form.add_error("mapping", exc.messages)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": portal,
            "title": f"Preview the mapping of {portal.code}",
            "form": form,
            "result": result,
        }
        return TemplateResponse(request, "admin/portals/preview.html", context)


@admin.register(Reception)
class ReceptionAdmin(admin.ModelAdmin):
    list_display = ("received_at", "portal_code", "outcome", "status_code", "latency_ms", "client_ip", "lead")
    list_select_related = ("portal", "lead")
    list_filter = ("outcome", "status_code", "portal", "received_at")
    search_fields = ("portal_code", "idempotency_key", "client_ip")
    date_hierarchy = "received_at"
    actions = ["replay"]
    raw_id_fields = ("lead", "replay_of", "portal")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Replay with the portal's current mapping", permissions=["replay"])
    def replay(self, request, queryset):
        for reception in queryset.order_by("received_at", "id"):
            try:
                result = services.replay_reception(
                    actor=request.user, reception_id=reception.pk, now=timezone.now(), ip=client_ip(request)
                )
            except services.ReceptionNotReplayable as exc:
                messages.error(request, f"Reception {reception.pk}: {exc.message}")
                continue
            if result.lead:
                messages.success(request, f"Reception {reception.pk}: lead {result.lead.pk} ({result.outcome}).")
            else:
                messages.error(request, f"Reception {reception.pk}: still invalid: {json.dumps(result.errors)}")

    def has_replay_permission(self, request):
        return request.user.has_perm("portals.replay_reception")


@admin.register(PortalKey)
class PortalKeyAdmin(admin.ModelAdmin):
    """Read-only: keys are issued and revoked by rotating them on the portal (stored hashed)."""

    list_display = ("portal", "prefix", "created_at", "revoked_at")
    list_select_related = ("portal",)
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "portal")
    search_fields = ("portal__code", "prefix")
    fields = ("portal", "prefix", "created_at", "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
