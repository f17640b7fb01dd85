import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView

from leadmarket.api.access import StaffAPIView

from ..models import AuditLog
from .serializers import AuditLogSerializer


class AuditLogFilter(django_filters.FilterSet):
    actor = django_filters.NumberFilter(field_name="actor_id")
    actor_email = django_filters.CharFilter(field_name="actor_label", lookup_expr="iexact")
    action = django_filters.CharFilter(
        field_name="action", lookup_expr="startswith", help_text="Exact name or a prefix such as `lead.`"
    )
    object_type = django_filters.CharFilter()
    object_id = django_filters.CharFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditLog
        fields = ()


@extend_schema(tags=["admin audit"])
class AuditLogListView(StaffAPIView, ListAPIView):
    """Staff actions and system events, newest first."""

    required_permissions = {"GET": "audit.view_auditlog"}
    serializer_class = AuditLogSerializer
    filterset_class = AuditLogFilter
    queryset = AuditLog.objects.order_by("-created_at", "-id")
