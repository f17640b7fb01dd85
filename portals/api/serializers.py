from rest_framework import serializers

from leads.models import Lead

from ..models import DigestEncoding, KeyLocation, Portal, PortalKey, Reception, SignatureScheme
from ..services import CONFIG_FIELDS


class PortalKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = PortalKey
        fields = ("id", "prefix", "created_at")


class PortalSerializer(serializers.ModelSerializer):
    live_keys = serializers.SerializerMethodField()
    has_signing_secret = serializers.SerializerMethodField()

    class Meta:
        model = Portal
        fields = ("id", *CONFIG_FIELDS, "has_signing_secret", "live_keys", "created_at", "updated_at")

    def get_live_keys(self, portal) -> list[dict]:
        # `live_key_list` is prefetched by the views (one query for the whole page).
        keys = getattr(portal, "live_key_list", None)
        if keys is None:
            keys = portal.keys.filter(revoked_at__isnull=True).order_by("-created_at", "-id")
        return PortalKeySerializer(keys, many=True).data

    def get_has_signing_secret(self, portal) -> bool:
        return bool(portal.signing_secret)


class PortalCredentialsSerializer(serializers.Serializer):
    portal = PortalSerializer()
    api_key = serializers.CharField(help_text="Shown once; only its hash is stored.")
    signing_secret = serializers.CharField(allow_null=True, help_text="Shown once when generated.")


class PortalUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    is_active = serializers.BooleanField(required=False)
    default_lead_type = serializers.CharField(max_length=50, required=False, allow_blank=True)
    rate_limit = serializers.CharField(max_length=20, required=False)
    duplicate_window_days = serializers.IntegerField(min_value=0, max_value=3650, required=False)
    mapping = serializers.JSONField(required=False)
    key_location = serializers.ChoiceField(choices=KeyLocation.choices, required=False)
    key_field = serializers.CharField(max_length=100, required=False, allow_blank=True)
    json_form_field = serializers.CharField(max_length=100, required=False, allow_blank=True)
    redact_fields = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=50)
    signature_scheme = serializers.ChoiceField(choices=SignatureScheme.choices, required=False)
    signature_header = serializers.CharField(max_length=100, required=False, allow_blank=True)
    signature_encoding = serializers.ChoiceField(choices=DigestEncoding.choices, required=False)
    signature_prefix = serializers.CharField(max_length=32, required=False, allow_blank=True)
    signing_secret = serializers.CharField(
        max_length=200, required=False, write_only=True, help_text="Set a secret the portal gave you (write-only)."
    )

    def validate_mapping(self, value):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise serializers.ValidationError("The mapping must be an object.")
        return value


class PortalCreateInput(PortalUpdateInput):
    code = serializers.SlugField(max_length=64)


class PortalRotateKeyInput(serializers.Serializer):
    revoke_previous = serializers.BooleanField(default=False, help_text="Revoke every older key now (leaked key).")
    rotate_signing_secret = serializers.BooleanField(default=False)


class PortalPreviewInput(serializers.Serializer):
    payload = serializers.DictField(help_text="A sample body as the portal would send it.")
    mapping = serializers.JSONField(required=False, help_text="Preview this mapping instead of the saved one.")


class PreviewLeadSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    lead = serializers.DictField(allow_null=True)
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ReceptionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Reception
        fields = (
            "id",
            "portal",
            "portal_code",
            "received_at",
            "client_ip",
            "status_code",
            "outcome",
            "errors",
            "latency_ms",
            "lead",
            "payload",
            "payload_text",
            "payload_truncated",
            "headers",
            "idempotency_key",
            "replay_of",
        )


class ReplayResultSerializer(serializers.Serializer):
    reception = ReceptionSerializer()
    lead_id = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(choices=Lead._meta.get_field("status").choices, allow_null=True)


class WebhookAcceptedSerializer(serializers.Serializer):
    lead_id = serializers.IntegerField()
    status = serializers.CharField()
