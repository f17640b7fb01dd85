from django.contrib.auth.models import Group
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from leadmarket.api.inputs import PhoneField, StrictInput

from ..models import Agency, Device, DevicePlatform, Notification, User


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
