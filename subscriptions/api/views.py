"""Subscription, territory and billing endpoints of the mobile app, and the staff plan endpoints.

Each command view validates its input, calls one service with the time of the request,
and serializes the result.
"""

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, mixins, serializers

from leadmarket.api.access import AgencyAPIView, PublicAPIView, StaffAPIView
from leadmarket.api.client import client_ip
from leadmarket.api.envelope import ok
from leadmarket.api.inputs import validated

from .. import selectors, services
from ..models import LedgerEntry, Territory
from .serializers import (
    BillingEntrySerializer,
    CancelInput,
    ChangePlanInput,
    PlanInput,
    PlanSerializer,
    StaffPlanSerializer,
    SubscribeInput,
    SubscriptionSerializer,
    TerritoryAddInput,
    TerritorySerializer,
)

INVALID = OpenApiResponse(description="Invalid input: `errors` names the fields.")
NOT_SUBSCRIBED_OR_CONFLICT = OpenApiResponse(description="State conflict; the message says why.")
UNAUTHENTICATED = OpenApiResponse(description="Missing or invalid credentials.")
FORBIDDEN = OpenApiResponse(description="The staff user lacks the permission.")
NOT_FOUND = OpenApiResponse(description="Not found.")


def _agency_call(request):
    """The keyword arguments every agency command passes to its service."""
    return {"agency": request.user.agency, "now": timezone.now(), "actor": request.user, "ip": client_ip(request)}


class PlanCatalogueView(PublicAPIView):
    @extend_schema(
        summary="Active plans with their prices (public, not paginated)",
        responses={200: PlanSerializer(many=True)},
        tags=["subscriptions"],
    )
    def get(self, request):
        return ok(PlanSerializer(selectors.plan_catalogue(), many=True).data)


class SubscriptionStatusView(AgencyAPIView):
    @extend_schema(
        summary="The agency's current subscription, or null",
        responses={200: SubscriptionSerializer(allow_null=True), 401: UNAUTHENTICATED},
        tags=["subscriptions"],
    )
    def get(self, request):
        subscription = selectors.current_subscription(request.user.agency)
        return ok(SubscriptionSerializer(subscription).data if subscription else None)


class SubscribeView(AgencyAPIView):
    @extend_schema(
        summary="Subscribe to a plan with 1..max_zipcodes ZIP codes; the first month is charged",
        request=SubscribeInput,
        responses={201: SubscriptionSerializer, 400: INVALID, 401: UNAUTHENTICATED, 409: NOT_SUBSCRIBED_OR_CONFLICT},
        tags=["subscriptions"],
    )
    def post(self, request):
        data = validated(SubscribeInput, request)
        subscription = services.subscribe(**_agency_call(request), plan_id=data["plan_id"], zipcodes=data["zipcodes"])
        return ok(SubscriptionSerializer(subscription).data, message="Subscribed.", status=201)


class ChangePlanView(AgencyAPIView):
    @extend_schema(
        summary="Change plan now: the unused old price is credited, the new one charged, prorated",
        request=ChangePlanInput,
        responses={200: SubscriptionSerializer, 400: INVALID, 401: UNAUTHENTICATED, 409: NOT_SUBSCRIBED_OR_CONFLICT},
        tags=["subscriptions"],
    )
    def put(self, request):
        data = validated(ChangePlanInput, request)
        subscription = services.change_plan(**_agency_call(request), plan_id=data["plan_id"])
        return ok(SubscriptionSerializer(subscription).data, message="Plan changed.")


class CancelView(AgencyAPIView):
    @extend_schema(
        summary="Cancel at period end, or now with a prorated credit (`immediate`)",
        request=CancelInput,
        responses={200: SubscriptionSerializer, 400: INVALID, 401: UNAUTHENTICATED, 409: NOT_SUBSCRIBED_OR_CONFLICT},
        tags=["subscriptions"],
    )
    def post(self, request):
        data = validated(CancelInput, request)
        subscription = services.cancel_subscription(**_agency_call(request), immediate=data["immediate"])
        message = "Subscription cancelled." if data["immediate"] else "Subscription ends at the end of the period."
        return ok(SubscriptionSerializer(subscription).data, message=message)


class TerritoryListView(mixins.ListModelMixin, AgencyAPIView, generics.GenericAPIView):
    serializer_class = TerritorySerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no agency
            return Territory.objects.none()
        return selectors.agency_territories(self.request.user.agency)

    @extend_schema(
        summary="The ZIP codes the agency holds", responses={200: TerritorySerializer(many=True)}, tags=["territories"]
    )
    def get(self, request):
        return self.list(request)

    @extend_schema(
        summary="Add a ZIP code; the rest of the period is charged, prorated",
        request=TerritoryAddInput,
        responses={201: TerritorySerializer, 400: INVALID, 401: UNAUTHENTICATED, 409: NOT_SUBSCRIBED_OR_CONFLICT},
        tags=["territories"],
    )
    def post(self, request):
        data = validated(TerritoryAddInput, request)
        territory = services.add_territory(**_agency_call(request), zipcode=data["zipcode"])
        return ok(TerritorySerializer(territory).data, message="ZIP code added.", status=201)


class TerritoryDetailView(AgencyAPIView):
    @extend_schema(
        summary="Remove a ZIP code; the rest of the period is credited, prorated",
        responses={200: TerritorySerializer, 400: INVALID, 401: UNAUTHENTICATED, 404: NOT_FOUND},
        tags=["territories"],
    )
    def delete(self, request, zipcode: str):
        territory = services.remove_territory(**_agency_call(request), zipcode=zipcode)
        return ok(TerritorySerializer(territory).data, message="ZIP code removed.")


class BillingHistoryView(mixins.ListModelMixin, AgencyAPIView, generics.GenericAPIView):
    serializer_class = BillingEntrySerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no agency
            return LedgerEntry.objects.none()
        return selectors.billing_history(self.request.user.agency)

    @extend_schema(
        summary="Charges, credits, payments and refunds, newest first, with the running balance",
        tags=["billing"],
    )
    def get(self, request):
        return self.list(request)


class StaffPlanListView(mixins.ListModelMixin, StaffAPIView, generics.GenericAPIView):
    required_permissions = {"GET": "subscriptions.view_plan", "POST": "subscriptions.add_plan"}
    serializer_class = StaffPlanSerializer
    filterset_fields = ("is_active",)

    def get_queryset(self):
        return selectors.plans_for_staff()

    @extend_schema(summary="Every plan, with its live subscriptions", tags=["admin plans"])
    def get(self, request):
        return self.list(request)

    @extend_schema(
        summary="Create a plan",
        request=PlanInput,
        responses={201: StaffPlanSerializer, 400: INVALID, 401: UNAUTHENTICATED, 403: FORBIDDEN},
        tags=["admin plans"],
    )
    def post(self, request):
        data = validated(PlanInput, request)
        plan = services.create_plan(actor=request.user, fields=data, ip=client_ip(request))
        return ok(
            StaffPlanSerializer(selectors.plans_for_staff().get(pk=plan.pk)).data, message="Plan created.", status=201
        )


PlanRemovalSerializer = inline_serializer(
    "PlanRemoval",
    {
        "deleted": serializers.BooleanField(help_text="False: the plan has subscribers and was deactivated instead."),
        "plan": StaffPlanSerializer(allow_null=True, help_text="The deactivated plan; null when deleted."),
    },
)


class StaffPlanDetailView(StaffAPIView):
    required_permissions = {
        "GET": "subscriptions.view_plan",
        "PUT": "subscriptions.change_plan",
        "DELETE": "subscriptions.delete_plan",
    }

    @extend_schema(
        summary="A plan",
        responses={200: StaffPlanSerializer, 401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND},
        tags=["admin plans"],
    )
    def get(self, request, plan_id: int):
        return ok(StaffPlanSerializer(get_object_or_404(selectors.plans_for_staff(), pk=plan_id)).data)

    @extend_schema(
        summary="Change a plan (only the fields sent); prices apply to subscribers from their next renewal",
        request=PlanInput(partial=True),
        responses={200: StaffPlanSerializer, 400: INVALID, 401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND},
        tags=["admin plans"],
    )
    def put(self, request, plan_id: int):
        changes = validated(PlanInput, request, partial=True)
        plan = services.update_plan(actor=request.user, plan_id=plan_id, changes=changes, ip=client_ip(request))
        return ok(StaffPlanSerializer(selectors.plans_for_staff().get(pk=plan.pk)).data, message="Plan updated.")

    @extend_schema(
        summary="Delete an unused plan; a plan with subscribers is deactivated instead",
        responses={200: PlanRemovalSerializer, 401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND},
        tags=["admin plans"],
    )
    def delete(self, request, plan_id: int):
        removal = services.delete_plan(actor=request.user, plan_id=plan_id, ip=client_ip(request))
        if removal.deleted:
            return ok({"deleted": True, "plan": None}, message="Plan deleted.")
        plan = selectors.plans_for_staff().get(pk=plan_id)
        if removal.live_subscriptions:
            message = (
                f"The plan has {removal.live_subscriptions} live subscription(s), so it was deactivated instead of "
                "deleted: it no longer appears in the catalogue and existing subscriptions continue."
            )
        else:
            message = (
                "Past subscriptions and their billing history refer to the plan, so it was deactivated instead "
                "of deleted: it no longer appears in the catalogue."
            )
        return ok({"deleted": False, "plan": StaffPlanSerializer(plan).data}, message=message)
