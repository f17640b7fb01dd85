from django.contrib import admin

from .models import Lead


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = ("id", "received_at", "portal", "status", "zipcode", "lead_type", "is_test", "duplicate_of")
    list_select_related = ("portal",)
    list_filter = ("status", "is_test", "portal", "received_at")
    search_fields = ("email", "phone", "zipcode", "external_id", "last_name")
    date_hierarchy = "received_at"
    raw_id_fields = ("duplicate_of", "portal")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False
