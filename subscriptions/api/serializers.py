from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from leadmarket.api.inputs import StrictInput, ZipCodeField

from ..models import MONEY, PLAN_FIELDS, LedgerEntry, Plan, Subscription, Territory

# Enough for any plan in practice; bounds the work one request can ask for.
MAX_ZIPCODES_PER_REQUEST = 1000


class PlanSerializer(serializers.ModelSerializer):
    """A plan; prices are USD per month as decimal strings. `monthly_lead_cap` null = unlimited."""

    class Meta:
        model = Plan
        fields = ("id", *PLAN_FIELDS)
        read_only_fields = fields


class StaffPlanSerializer(serializers.ModelSerializer):
    live_subscriptions = serializers.IntegerField(read_only=True)

    class Meta:
        model = Plan
        fields = ("id", *PLAN_FIELDS, "live_subscriptions", "created_at", "updated_at")
        read_only_fields = fields


class SubscriptionSerializer(serializers.ModelSerializer):
    """Reads territories through `territories.all()`: prefetch them for lists."""

    plan = PlanSerializer(read_only=True)
    zipcodes = serializers.SerializerMethodField()
    monthly_price = serializers.SerializerMethodField()

    class Meta:
        model = Subscription
        fields = (
            "id",
            "plan",
            "status",
            "zipcodes",
            "monthly_price",
            "base_price",
            "price_per_zipcode",
            "started_at",
            "current_period_start",
            "current_period_end",
            "cancel_at_period_end",
            "cancelled_at",
            "ended_at",
        )
        read_only_fields = fields

    def get_zipcodes(self, subscription: Subscription) -> list[str]:
        return sorted(territory.zipcode for territory in subscription.territories.all())

    @extend_schema_field(serializers.DecimalField(**MONEY))
    def get_monthly_price(self, subscription: Subscription) -> str:
        return str(subscription.monthly_price_for(len(subscription.territories.all())))


class TerritorySerializer(serializers.ModelSerializer):
    monthly_price = serializers.DecimalField(**MONEY, source="subscription.price_per_zipcode", read_only=True)
    added_at = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Territory
        fields = ("zipcode", "city", "state", "monthly_price", "added_at")
        read_only_fields = fields


class BillingEntrySerializer(serializers.ModelSerializer):
    """`amount` is never negative and `kind` gives its sign; `signed_amount` applies it, and
    `balance` is what the agency owes right after the entry (negative: in its favour)."""

    subscription_id = serializers.IntegerField(read_only=True)
    signed_amount = serializers.DecimalField(**MONEY, read_only=True)
    balance = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)

    class Meta:
        model = LedgerEntry
        fields = (
            "id",
            "kind",
            "reason",
            "description",
            "reference",
            "amount",
            "signed_amount",
            "balance",
            "period_start",
            "period_end",
            "subscription_id",
            "created_at",
        )
        read_only_fields = fields


class SubscribeInput(StrictInput):
    plan_id = serializers.IntegerField(min_value=1)
    zipcodes = serializers.ListField(child=ZipCodeField(), min_length=1, max_length=MAX_ZIPCODES_PER_REQUEST)


class ChangePlanInput(StrictInput):
    plan_id = serializers.IntegerField(min_value=1)


class CancelInput(StrictInput):
    immediate = serializers.BooleanField(default=False, help_text="End now with a prorated credit.")


class TerritoryAddInput(StrictInput):
    zipcode = ZipCodeField()


class PlanInput(StrictInput):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    price_per_zipcode = serializers.DecimalField(**MONEY, min_value=0)
    base_price = serializers.DecimalField(**MONEY, min_value=0, required=False)
    max_zipcodes = serializers.IntegerField(min_value=1, max_value=2_147_483_647)
    monthly_lead_cap = serializers.IntegerField(min_value=1, max_value=2_147_483_647, required=False, allow_null=True)
    is_active = serializers.BooleanField(required=False)
    display_order = serializers.IntegerField(min_value=0, max_value=2_147_483_647, required=False)
