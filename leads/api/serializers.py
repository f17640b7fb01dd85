from rest_framework import serializers

from leadmarket.api.envelope import json_time

from ..models import Lead, Offer, OfferStatus, RejectReason
from ..selectors import CONTACT_FIELDS

# The lead serializers read values() rows (dicts, see selectors) and build their output in
# `to_representation`: DRF's field-by-field machinery was the largest cost of a list page.
# Their declared fields describe the output in the schema; a test keeps the two the same.


class MobileLeadSerializer(serializers.Serializer):
    """A lead as the agency sees it through its offer; contact details only once accepted."""

    id = serializers.IntegerField()
    offer_status = serializers.CharField()
    offered_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    responded_at = serializers.DateTimeField(allow_null=True)
    lead_type = serializers.CharField()
    zipcode = serializers.CharField()
    city = serializers.CharField()
    state = serializers.CharField()
    first_name = serializers.CharField()
    received_at = serializers.DateTimeField()
    contact_visible = serializers.BooleanField(read_only=True)
    last_name = serializers.CharField(allow_null=True, read_only=True)
    email = serializers.CharField(allow_null=True, read_only=True)
    phone = serializers.CharField(allow_null=True, read_only=True)
    address = serializers.CharField(allow_null=True, read_only=True)
    details = serializers.DictField(allow_null=True, read_only=True)

    def to_representation(self, offer: dict) -> dict:
        """`offer`: a row of `selectors.AGENCY_LEAD_COLUMNS`."""
        accepted = offer["status"] == OfferStatus.ACCEPTED
        return {
            "id": offer["lead_id"],
            "offer_status": offer["status"],
            "offered_at": json_time(offer["offered_at"]),
            "expires_at": json_time(offer["expires_at"]),
            "responded_at": json_time(offer["responded_at"]),
            "lead_type": offer["lead__lead_type"],
            "zipcode": offer["lead__zipcode"],
            "city": offer["lead__city"],
            "state": offer["lead__state"],
            "first_name": offer["lead__first_name"],
            "received_at": json_time(offer["lead__received_at"]),
            "contact_visible": accepted,
            **{field: offer[f"lead__{field}"] if accepted else None for field in CONTACT_FIELDS},
        }


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

    def to_representation(self, lead: dict) -> dict:
        """`lead`: a row of `selectors.ADMIN_LEAD_COLUMNS` (or more)."""
        return {
            "id": lead["id"],
            "status": lead["status"],
            "received_at": json_time(lead["received_at"]),
            "status_changed_at": json_time(lead["status_changed_at"]),
            "portal": lead["portal__code"],
            "zipcode": lead["zipcode"],
            "city": lead["city"],
            "state": lead["state"],
            "lead_type": lead["lead_type"],
            "first_name": lead["first_name"],
            "last_name": lead["last_name"],
            "email": lead["email"],
            "phone": lead["phone"],
            "is_test": lead["is_test"],
            "duplicate_of": lead["duplicate_of"],
            "external_id": lead["external_id"],
            "agency_id": lead["current_agency_id"],
            "agency_name": lead["current_agency_name"],
        }


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
    offers = AdminOfferSerializer(many=True)
    receptions = AdminReceptionSummarySerializer(many=True)

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

    def to_representation(self, lead: dict) -> dict:
        """`lead`: the row `selectors.admin_lead_detail` returns."""
        return {
            **super().to_representation(lead),
            "address": lead["address"],
            "details": lead["details"],
            "tcpa_consent": lead["tcpa_consent"],
            "consent_text": lead["consent_text"],
            "consented_at": json_time(lead["consented_at"]),
            "consent_ip": lead["consent_ip"],
            "certificate_url": lead["certificate_url"],
            "idempotency_key": lead["idempotency_key"],
            "offers": self.fields["offers"].to_representation(lead["offers"]),
            "receptions": self.fields["receptions"].to_representation(lead["receptions"]),
        }
