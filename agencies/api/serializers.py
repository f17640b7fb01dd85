from rest_framework import serializers

from leadmarket.api.inputs import PhoneField, StrictInput

from ..models import Agency, User


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
    class Meta:
        model = User
        fields = ("id", "email", "full_name", "is_superuser")
        read_only_fields = fields


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
