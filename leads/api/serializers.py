from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Lead, Offer, OfferStatus, RejectReason

# What an agency sees before it accepts: enough to decide, not enough to call.
TEASER_FIELDS = ("lead_type", "zipcode", "city", "state", "first_name", "received_at")
CONTACT_FIELDS = ("last_name", "email", "phone", "address", "details")


class MobileLeadSerializer(serializers.Serializer):
    """A lead as the agency sees it through its offer; contact details only once accepted."""

    id = serializers.IntegerField(source="lead_id")
    offer_status = serializers.CharField(source="status")
    offered_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    responded_at = serializers.DateTimeField(allow_null=True)
    lead_type = serializers.CharField(source="lead.lead_type")
    zipcode = serializers.CharField(source="lead.zipcode")
    city = serializers.CharField(source="lead.city")
    state = serializers.CharField(source="lead.state")
    first_name = serializers.CharField(source="lead.first_name")
    received_at = serializers.DateTimeField(source="lead.received_at")
    contact_visible = serializers.SerializerMethodField()
    last_name = serializers.SerializerMethodField()
    email = serializers.SerializerMethodField()
    phone = serializers.SerializerMethodField()
    address = serializers.SerializerMethodField()
    details = serializers.SerializerMethodField()

    def get_contact_visible(self, offer: Offer) -> bool:
        return offer.status == OfferStatus.ACCEPTED

    def _contact(self, offer: Offer, field: str):
        return getattr(offer.lead, field) if offer.status == OfferStatus.ACCEPTED else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_last_name(self, offer):
        return self._contact(offer, "last_name")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_email(self, offer):
        return self._contact(offer, "email")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_phone(self, offer):
        return self._contact(offer, "phone")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_address(self, offer):
        return self._contact(offer, "address")

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_details(self, offer):
        return self._contact(offer, "details")


class LeadRejectInput(serializers.Serializer):
    reason = serializers.ChoiceField(choices=RejectReason.choices)
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class LeadDistributeInput(serializers.Serializer):
    agency_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    force = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        if attrs.get("force") and not attrs.get("agency_id"):
            raise serializers.ValidationError({"force": ["force needs an agency_id."]})
        return attrs


class AdminLeadSerializer(serializers.ModelSerializer):
    portal = serializers.CharField(source="portal.code")
    agency_id = serializers.IntegerField(
        source="current_agency_id", allow_null=True, read_only=True, help_text="Agency of the live or accepted offer."
    )
    agency_name = serializers.CharField(source="current_agency_name", allow_null=True, read_only=True)

    class Meta:
        model = Lead
        fields = (
            "id",
            "status",
            "received_at",
            "status_changed_at",
            "portal",
            "zipcode",
            "city",
            "state",
            "lead_type",
            "first_name",
            "last_name",
            "email",
            "phone",
            "is_test",
            "duplicate_of",
            "external_id",
            "agency_id",
            "agency_name",
        )
        read_only_fields = fields


class AdminOfferSerializer(serializers.ModelSerializer):
    agency_name = serializers.CharField(source="agency.business_name")
    assigned_by = serializers.EmailField(source="assigned_by.email", allow_null=True, default=None)
    response_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Offer
        fields = (
            "id",
            "agency",
            "agency_name",
            "status",
            "offered_at",
            "expires_at",
            "responded_at",
            "response_seconds",
            "reject_reason",
            "reject_note",
            "decision",
            "assigned_by",
        )
        read_only_fields = fields

    def get_response_seconds(self, offer: Offer) -> float | None:
        return (offer.responded_at - offer.offered_at).total_seconds() if offer.responded_at else None


class AdminReceptionSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    received_at = serializers.DateTimeField()
    outcome = serializers.CharField()
    status_code = serializers.IntegerField()
    client_ip = serializers.IPAddressField(allow_null=True)
    latency_ms = serializers.IntegerField()


class AdminLeadDetailSerializer(AdminLeadSerializer):
    offers = AdminOfferSerializer(many=True, source="offer_history")
    receptions = AdminReceptionSummarySerializer(many=True, source="reception_history")

    class Meta(AdminLeadSerializer.Meta):
        fields = (
            *AdminLeadSerializer.Meta.fields,
            "address",
            "details",
            "tcpa_consent",
            "consent_text",
            "consented_at",
            "consent_ip",
            "certificate_url",
            "idempotency_key",
            "offers",
            "receptions",
        )
        read_only_fields = fields
