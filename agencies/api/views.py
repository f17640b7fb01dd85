import django_filters
from django.conf import settings
from django.contrib.auth.models import Group
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import AuthenticationFailed, Throttled, ValidationError
from rest_framework.generics import ListAPIView

from leadmarket.api.access import ANY_STAFF, AgencyAPIView, PublicAPIView, StaffAPIView
from leadmarket.api.client import client_ip
from leadmarket.api.envelope import ok
from leadmarket.api.inputs import validated
from leadmarket.api.ratelimit import Limit, hit, retry_after
from leadmarket.api.schema import ERROR
from leadmarket.api.throttling import ApiRateThrottle, RegistrationThrottle, TokenRefreshThrottle
from leadmarket.errors import NotFound
from leadmarket.zipcodes import InvalidZip, lookup_zip

from .. import selectors, services
from ..authentication import Realm, issue_tokens
from ..models import Agency, AgencyStatus, User, normalize_email
from .serializers import (
    AdminAgencyDetailSerializer,
    AdminAgencySerializer,
    AgencyProfileInput,
    AgencyRegisterInput,
    AgencySerializer,
    AgencySessionSerializer,
    AgencyUpdateInput,
    LoginInput,
    RoleCreateInput,
    RoleSerializer,
    StaffSessionSerializer,
    StaffUserCreateInput,
    StaffUserSerializer,
    TokenPairSerializer,
    TokenRefreshInput,
)


def throttled_log_in(request, realm: Realm):
    """Logs in with the body's credentials; repeated failures are a 429 with Retry-After,
    counted per account and address, per address, and per account (see settings)."""
    data = validated(LoginInput, request)
    email, ip = normalize_email(data["email"]), client_ip(request) or "unknown"
    counters = [
        (Limit(f"login-failures-account-ip-{realm}", settings.LOGIN_FAILURE_RATE), f"{email}|{ip}"),
        (Limit(f"login-failures-ip-{realm}", settings.LOGIN_FAILURE_RATE_PER_IP), ip),
        (Limit(f"login-failures-account-{realm}", settings.LOGIN_FAILURE_RATE_PER_ACCOUNT), email),
    ]
    wait = max((seconds for limit, key in counters if (seconds := retry_after(request, limit, key))), default=None)
    if wait:
        raise Throttled(wait=wait, detail="Too many failed login attempts. Try again later.")
    try:
        return services.log_in(email=email, password=data["password"], realm=realm)
    except AuthenticationFailed:
        for limit, key in counters:
            hit(request, limit, key)
        raise


class AgencyRegisterView(PublicAPIView):
    throttle_classes = [ApiRateThrottle, RegistrationThrottle]

    @extend_schema(request=AgencyRegisterInput, responses={201: AgencySessionSerializer}, tags=["agency auth"])
    def post(self, request):
        data = validated(AgencyRegisterInput, request)
        agency = services.register_agency(**data, ip=client_ip(request))
        tokens = issue_tokens(agency.user, Realm.AGENCY)
        return ok({**tokens, "agency": AgencySerializer(agency).data}, message="Agency registered.", status=201)


class AgencyLoginView(PublicAPIView):
    @extend_schema(request=LoginInput, responses={200: AgencySessionSerializer, 401: ERROR}, tags=["agency auth"])
    def post(self, request):
        user, tokens = throttled_log_in(request, Realm.AGENCY)
        return ok({**tokens, "agency": AgencySerializer(user.agency).data}, message="Logged in.")


@extend_schema(tags=["agency auth"])
class TokenRefreshView(PublicAPIView):
    """A new token pair for a refresh token; the token's realm (agency or staff) carries over."""

    throttle_classes = [ApiRateThrottle, TokenRefreshThrottle]

    @extend_schema(request=TokenRefreshInput, responses={200: TokenPairSerializer, 401: ERROR})
    def post(self, request):
        data = validated(TokenRefreshInput, request)
        return ok(services.refresh_tokens(refresh=data["refresh"]), message="Token refreshed.")


class AgencyProfileView(AgencyAPIView):
    @extend_schema(responses={200: AgencySerializer}, tags=["agency profile"])
    def get(self, request):
        return ok(AgencySerializer(request.user.agency).data)

    @extend_schema(request=AgencyProfileInput, responses={200: AgencySerializer}, tags=["agency profile"])
    def put(self, request):
        return self._update(request, partial=False)

    @extend_schema(request=AgencyProfileInput, responses={200: AgencySerializer}, tags=["agency profile"])
    def patch(self, request):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool):
        changes = validated(AgencyProfileInput, request, partial=partial)
        agency = services.update_agency_profile(agency=request.user.agency, changes=changes, ip=client_ip(request))
        return ok(AgencySerializer(agency).data, message="Profile updated.")


class StaffLoginView(PublicAPIView):
    @extend_schema(request=LoginInput, responses={200: StaffSessionSerializer, 401: ERROR}, tags=["admin auth"])
    def post(self, request):
        user, tokens = throttled_log_in(request, Realm.STAFF)
        return ok({**tokens, "user": StaffUserSerializer(user).data}, message="Logged in.")


@extend_schema(tags=["admin auth"])
class StaffTokenRefreshView(TokenRefreshView):
    """The same exchange, listed with the staff endpoints."""


class StaffMeView(StaffAPIView):
    required_permissions = {"GET": ANY_STAFF}

    @extend_schema(responses={200: StaffUserSerializer}, tags=["admin auth"])
    def get(self, request):
        return ok(StaffUserSerializer(request.user).data)


@extend_schema(tags=["admin users"])
class StaffUserListView(StaffAPIView, ListAPIView):
    """Staff users and their roles (never password hashes)."""

    required_permissions = {"GET": "agencies.view_user", "POST": "agencies.add_user"}
    serializer_class = StaffUserSerializer
    queryset = User.objects.filter(is_staff=True).prefetch_related("groups").order_by("email", "id")

    @extend_schema(request=StaffUserCreateInput, responses={201: StaffUserSerializer})
    def post(self, request):
        data = validated(StaffUserCreateInput, request)
        user = services.create_staff_user(**data, actor=request.user, ip=client_ip(request))
        return ok(StaffUserSerializer(user).data, message="Staff user created.", status=201)


@extend_schema(tags=["admin users"])
class RoleListView(StaffAPIView, ListAPIView):
    """Roles: Django groups with permission codes (`app_label.codename`)."""

    required_permissions = {"GET": "auth.view_group", "POST": "auth.add_group"}
    serializer_class = RoleSerializer
    queryset = Group.objects.prefetch_related("permissions__content_type").order_by("name", "id")

    @extend_schema(request=RoleCreateInput, responses={201: RoleSerializer})
    def post(self, request):
        data = validated(RoleCreateInput, request)
        role = services.create_role(
            name=data["name"], permission_codes=data["permissions"], actor=request.user, ip=client_ip(request)
        )
        return ok(RoleSerializer(role).data, message="Role created.", status=201)


class AdminAgencyFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=AgencyStatus.choices)
    has_live_subscription = django_filters.BooleanFilter(method="filter_live_subscription")
    zipcode = django_filters.CharFilter(method="filter_zipcode", help_text="Agencies whose live subscription holds it.")
    search = django_filters.CharFilter(method="filter_search", help_text="Business name, contact name or email.")

    class Meta:
        model = Agency
        fields = ()

    def filter_live_subscription(self, agencies, name, value):
        return selectors.with_live_subscription(agencies, value)

    def filter_zipcode(self, agencies, name, value):
        try:
            zipcode = lookup_zip(value).zipcode
        except InvalidZip as exc:
            raise ValidationError({"zipcode": [str(exc)]}) from exc
        return selectors.covering_zipcode(agencies, zipcode)

    def filter_search(self, agencies, name, value):
        return selectors.search_agencies(agencies, value)


@extend_schema(tags=["admin agencies"])
class AdminAgencyListView(StaffAPIView, ListAPIView):
    """Agencies, newest first, with their live subscription summary and lead counts."""

    required_permissions = {"GET": "agencies.view_agency"}
    serializer_class = AdminAgencySerializer
    filterset_class = AdminAgencyFilter
    queryset = Agency.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self):
        return selectors.admin_agencies().order_by("-created_at", "-id")


@extend_schema(tags=["admin agencies"])
class AdminAgencyDetailView(StaffAPIView):
    required_permissions = {"GET": "agencies.view_agency", "PUT": "agencies.change_agency"}

    @extend_schema(responses={200: AdminAgencyDetailSerializer, 404: ERROR})
    def get(self, request, pk: int):
        """Profile, live subscription, territories, balance, recent leads and offer outcomes."""
        return ok(AdminAgencyDetailSerializer(self._overview(pk)).data)

    @extend_schema(request=AgencyUpdateInput, responses={200: AdminAgencyDetailSerializer, 404: ERROR})
    def put(self, request, pk: int):
        """Changes the fields given. `"status": "suspended"` takes the agency out of rotation at once
        and moves its live offers to the next agency; `"status": "active"` puts it back. Audited."""
        changes = validated(AgencyUpdateInput, request)
        services.update_agency(
            agency_id=pk, changes=dict(changes), actor=request.user, now=timezone.now(), ip=client_ip(request)
        )
        return ok(AdminAgencyDetailSerializer(self._overview(pk)).data, message="Agency updated.")

    def _overview(self, pk: int):
        overview = selectors.admin_agency_overview(pk)
        if overview is None:
            raise NotFound("Agency not found.")
        return overview
