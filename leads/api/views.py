import django_filters
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView

from leadmarket.api.access import AgencyAPIView, StaffAPIView
from leadmarket.api.client import client_ip
from leadmarket.api.envelope import ok
from leadmarket.api.inputs import validated
from leadmarket.api.pagination import KeysetPagination
from leadmarket.api.schema import ERROR
from leadmarket.errors import NotFound

from .. import distribution, selectors
from ..models import Lead, LeadStatus, Offer, OfferStatus
from .serializers import (
    AdminLeadDetailSerializer,
    AdminLeadSerializer,
    LeadDistributeInput,
    LeadRejectInput,
    MobileLeadSerializer,
)

# --- Mobile ------------------------------------------------------------------------------


class MobileLeadFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=[(OfferStatus.OFFERED, "offered"), (OfferStatus.ACCEPTED, "accepted")],
        help_text="offered: waiting for your answer; accepted: yours.",
    )
    lead_type = django_filters.CharFilter(field_name="lead__lead_type")
    offered_after = django_filters.IsoDateTimeFilter(field_name="offered_at", lookup_expr="gte")
    offered_before = django_filters.IsoDateTimeFilter(field_name="offered_at", lookup_expr="lt")

    class Meta:
        model = Offer
        fields = ()


@extend_schema(tags=["mobile leads"])
class MobileLeadListView(AgencyAPIView, ListAPIView):
    """Leads offered to this agency or accepted by it, newest offer first."""

    serializer_class = MobileLeadSerializer
    filterset_class = MobileLeadFilter
    pagination_class = KeysetPagination  # served by offer_agency_list_idx, however deep
    row_columns = selectors.AGENCY_LEAD_COLUMNS
    queryset = Offer.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self):
        return selectors.agency_leads(self.request.user.agency, now=timezone.now())


def _agency_lead(request, lead_id: int) -> dict:
    lead = selectors.agency_lead(request.user.agency, lead_id=lead_id, now=timezone.now())
    if lead is None:
        raise NotFound("Lead not found.")
    return lead


@extend_schema(tags=["mobile leads"])
class MobileLeadDetailView(AgencyAPIView):
    @extend_schema(responses={200: MobileLeadSerializer, 404: ERROR})
    def get(self, request, pk: int):
        return ok(MobileLeadSerializer(_agency_lead(request, pk)).data)


@extend_schema(tags=["mobile leads"])
class MobileLeadAcceptView(AgencyAPIView):
    @extend_schema(request=None, responses={200: MobileLeadSerializer, 404: ERROR, 409: ERROR})
    def put(self, request, pk: int):
        """Takes the lead: its contact details become visible. 409 when it is no longer yours to take."""
        distribution.accept_offer(agency=request.user.agency, lead_id=pk, now=timezone.now())
        return ok(MobileLeadSerializer(_agency_lead(request, pk)).data, message="Lead accepted.")


@extend_schema(tags=["mobile leads"])
class MobileLeadRejectView(AgencyAPIView):
    @extend_schema(request=LeadRejectInput, responses={200: None, 404: ERROR, 409: ERROR})
    def put(self, request, pk: int):
        """Declines the lead; it goes to the next eligible agency and leaves your list."""
        data = validated(LeadRejectInput, request)
        distribution.reject_offer(
            agency=request.user.agency, lead_id=pk, reason=data["reason"], note=data["note"], now=timezone.now()
        )
        return ok(None, message="Lead rejected.")


# --- Admin -------------------------------------------------------------------------------


class AdminLeadFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=LeadStatus.choices)
    zipcode = django_filters.CharFilter()
    portal = django_filters.CharFilter(field_name="portal__code", help_text="Portal code.")
    agency = django_filters.NumberFilter(method="filter_agency", help_text="Leads ever offered to this agency.")
    lead_type = django_filters.CharFilter()
    received_after = django_filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="gte")
    received_before = django_filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="lt")
    is_test = django_filters.BooleanFilter()
    is_duplicate = django_filters.BooleanFilter(method="filter_duplicate")
    search = django_filters.CharFilter(method="filter_search", help_text="Name, email or phone.")

    class Meta:
        model = Lead
        fields = ()

    def filter_agency(self, leads, name, value):
        return leads.filter(id__in=Offer.objects.filter(agency_id=value).values("lead_id"))

    def filter_duplicate(self, leads, name, value):
        return leads.filter(status=LeadStatus.DUPLICATE) if value else leads.exclude(status=LeadStatus.DUPLICATE)

    def filter_search(self, leads, name, value):
        value = value.strip()
        if not value:
            return leads
        match = Q(email__iexact=value) | Q(last_name__iexact=value) | Q(first_name__iexact=value)
        digits = "".join(character for character in value if character.isdigit())
        if len(digits) >= 4:  # a phone number or a good part of one
            match |= Q(phone__contains=digits)
        return leads.filter(match)


@extend_schema(tags=["admin leads"])
class AdminLeadListView(StaffAPIView, ListAPIView):
    """Every lead, newest first, with the agency currently holding it."""

    required_permissions = {"GET": "leads.view_lead"}
    serializer_class = AdminLeadSerializer
    filterset_class = AdminLeadFilter
    pagination_class = KeysetPagination  # lead_recent_idx, lead_zipcode_recent_idx, lead_zipcode_status_list_idx
    row_columns = selectors.ADMIN_LEAD_COLUMNS
    queryset = Lead.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self):
        return selectors.admin_leads().order_by("-received_at", "-id")


@extend_schema(tags=["admin leads"])
class AdminLeadDetailView(StaffAPIView):
    required_permissions = {"GET": "leads.view_lead"}

    @extend_schema(responses={200: AdminLeadDetailSerializer, 404: ERROR})
    def get(self, request, pk: int):
        """The lead with every offer, its outcome, timing and decision trace, and its receptions."""
        lead = selectors.admin_lead_detail(pk)
        if lead is None:
            raise NotFound("Lead not found.")
        return ok(AdminLeadDetailSerializer(lead).data)


@extend_schema(tags=["admin leads"])
class AdminLeadDistributeView(StaffAPIView):
    required_permissions = {"POST": "leads.distribute_lead"}

    @extend_schema(request=LeadDistributeInput, responses={200: AdminLeadDetailSerializer, 404: ERROR, 409: ERROR})
    def post(self, request, pk: int):
        """`{}`: the next agency in rotation; `{"agency_id": n}`: that agency, which must be active and
        cover the ZIP code unless `"force": true` (audited). A live offer to another agency is withdrawn."""
        data = validated(LeadDistributeInput, request)
        distribution.assign_lead(
            lead_id=pk,
            actor=request.user,
            agency_id=data.get("agency_id"),
            force=data["force"],
            now=timezone.now(),
            ip=client_ip(request),
        )
        return ok(AdminLeadDetailSerializer(selectors.admin_lead_detail(pk)).data, message="Lead distributed.")


class StatsRangeInput(serializers.Serializer):
    received_after = serializers.DateTimeField(required=False)
    received_before = serializers.DateTimeField(required=False)


@extend_schema(tags=["admin leads"])
class DistributionStatsView(StaffAPIView):
    required_permissions = {"GET": "leads.view_lead"}

    @extend_schema(
        parameters=[StatsRangeInput],
        responses={
            200: inline_serializer(
                "DistributionStats",
                {
                    "per_agency": serializers.ListField(child=serializers.DictField()),
                    "per_zipcode": serializers.ListField(child=serializers.DictField()),
                    "per_portal": serializers.ListField(child=serializers.DictField()),
                    "per_day": serializers.ListField(child=serializers.DictField()),
                    "currently_unassigned": serializers.IntegerField(),
                    "awaiting_response": serializers.IntegerField(),
                },
            )
        },
    )
    def get(self, request):
        """Per agency: offers by outcome, acceptance rate, median seconds to respond; per ZIP code,
        portal and day: leads by status; and the current backlog."""
        serializer = StatsRangeInput(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        return ok(
            selectors.distribution_stats(
                received_from=serializer.validated_data.get("received_after"),
                received_to=serializer.validated_data.get("received_before"),
            )
        )
