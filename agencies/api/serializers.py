from django.contrib.auth.models import Group
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from leadmarket.api.inputs import PhoneField, StrictInput
from subscriptions.api.serializers import SubscriptionSerializer
from subscriptions.models import Territory

from ..models import Agency, AgencyStatus, Device, DevicePlatform, Notification, User


class AgencySerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Agency
        fields = (
            "id",
            "email",
            "business_name",
            "contact_name",
            "phone",
            "status",
            "accepting_leads",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class StaffUserSerializer(serializers.ModelSerializer):
    roles = serializers.SlugRelatedField(source="groups", slug_field="name", many=True, read_only=True)

    class Meta:
        model = User
        fields = ("id", "email", "full_name", "is_superuser", "is_active", "roles", "created_at", "last_login")
        read_only_fields = fields


class RoleSerializer(serializers.ModelSerializer):
    permissions = serializers.SerializerMethodField()

    class Meta:
        model = Group
        fields = ("id", "name", "permissions")
        read_only_fields = fields

    def get_permissions(self, role: Group) -> list[str]:
        return sorted(f"{p.content_type.app_label}.{p.codename}" for p in role.permissions.all())


class RoleCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=150)
    permissions = serializers.ListField(child=serializers.CharField(max_length=200), max_length=500)


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class RoleField(serializers.Field):
    """A role given by its id (as the role list shows it) or by its name."""

    def to_internal_value(self, data):
        lookup = {"pk": int(data)} if isinstance(data, int) or str(data).isdigit() else {"name__iexact": str(data)}
        role = Group.objects.filter(**lookup).first() if not isinstance(data, bool) else None
        if role is None:
            raise serializers.ValidationError("Unknown role.")
        return role


class StaffUserCreateInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True)
    full_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    role = RoleField(help_text="The role's id or name.")


class AgencyRegisterInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True)
    business_name = serializers.CharField(max_length=200)
    contact_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    phone = PhoneField(required=False, allow_blank=True, default="")


class LoginInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True)


class TokenRefreshInput(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class AgencySessionSerializer(TokenPairSerializer):
    agency = AgencySerializer()


class StaffSessionSerializer(TokenPairSerializer):
    user = StaffUserSerializer()


class AgencyProfileInput(StrictInput):
    business_name = serializers.CharField(max_length=200)
    contact_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    phone = PhoneField(required=False, allow_blank=True)
    accepting_leads = serializers.BooleanField(required=False)


class DeviceRegisterInput(serializers.Serializer):
    token = serializers.CharField(max_length=4096)
    platform = serializers.ChoiceField(choices=DevicePlatform.choices)


class DeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = ("id", "token", "platform", "is_active", "created_at", "last_registered_at")
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer):
    is_read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ("id", "kind", "title", "body", "data", "created_at", "read_at", "is_read")
        read_only_fields = fields

    def get_is_read(self, notification: Notification) -> bool:
        return notification.read_at is not None


class NotificationPageSerializer(serializers.Serializer):
    results = NotificationSerializer(many=True)
    count = serializers.IntegerField()
    unread_count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class MarkedReadSerializer(serializers.Serializer):
    marked_read = serializers.IntegerField()


# --- Staff: agencies ---------------------------------------------------------------------


class AgencySubscriptionSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(source="live_subscription_id")
    plan = serializers.CharField(source="live_plan_name")
    status = serializers.CharField(source="live_subscription_status")
    zipcode_count = serializers.IntegerField(source="live_zipcode_count")
    current_period_end = serializers.DateTimeField(source="live_period_end")


class AgencyLeadCountsSerializer(serializers.Serializer):
    offered = serializers.IntegerField(source="leads_offered", help_text="Offers ever made to the agency.")
    awaiting = serializers.IntegerField(source="leads_awaiting", help_text="Live offers waiting for its answer.")
    accepted = serializers.IntegerField(source="leads_accepted")


class AdminAgencySerializer(AgencySerializer):
    """An agency in the staff list; reads the annotations of `selectors.admin_agencies()`."""

    subscription = serializers.SerializerMethodField()
    leads = AgencyLeadCountsSerializer(source="*", read_only=True)

    class Meta(AgencySerializer.Meta):
        fields = (*AgencySerializer.Meta.fields, "subscription", "leads")
        read_only_fields = fields

    @extend_schema_field(AgencySubscriptionSummarySerializer(allow_null=True))
    def get_subscription(self, agency: Agency) -> dict | None:
        if agency.live_subscription_id is None:
            return None
        return AgencySubscriptionSummarySerializer(agency).data


class TerritoryOfAgencySerializer(serializers.ModelSerializer):
    class Meta:
        model = Territory
        fields = ("zipcode", "city", "state", "created_at")
        read_only_fields = fields


class AgencyRecentLeadSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="lead_id")
    zipcode = serializers.CharField(source="lead.zipcode")
    lead_type = serializers.CharField(source="lead.lead_type")
    received_at = serializers.DateTimeField(source="lead.received_at")
    offer_status = serializers.CharField(source="status")
    offered_at = serializers.DateTimeField()
    responded_at = serializers.DateTimeField(allow_null=True)


class AgencyOfferStatsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    offered = serializers.IntegerField(help_text="Still waiting for the agency's answer.")
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    expired = serializers.IntegerField()
    withdrawn = serializers.IntegerField()
    acceptance_rate = serializers.FloatField(allow_null=True, help_text="accepted / (accepted + rejected + expired)")


class AdminAgencyDetailSerializer(serializers.Serializer):
    """Reads an `AgencyOverview`."""

    agency = AgencySerializer()
    subscription = SubscriptionSerializer(allow_null=True)
    territories = TerritoryOfAgencySerializer(many=True)
    balance = serializers.DecimalField(
        max_digits=14, decimal_places=2, help_text="Positive: the agency owes it; negative: in its favour."
    )
    recent_leads = AgencyRecentLeadSerializer(source="recent_offers", many=True)
    offer_stats = AgencyOfferStatsSerializer()


class AgencyUpdateInput(StrictInput):
    """The fields given are changed; the others are left as they are."""

    business_name = serializers.CharField(max_length=200, required=False)
    contact_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    phone = PhoneField(required=False, allow_blank=True)
    accepting_leads = serializers.BooleanField(required=False)
    status = serializers.ChoiceField(
        choices=AgencyStatus.choices,
        required=False,
        help_text="suspended: out of rotation at once, its live offers move to the next agency; active: back in.",
    )
