from rest_framework import serializers

from leadmarket.phones import normalize_phone


def validated(input_class: type[serializers.Serializer], request, *, partial: bool = False, **kwargs) -> dict:
    """Validates the request body with an input serializer; a 400 with field errors if invalid."""
    serializer = input_class(data=request.data, partial=partial, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class StrictInput(serializers.Serializer):
    """An input that refuses fields it does not declare instead of ignoring them."""

    def validate(self, attrs):
        if isinstance(self.initial_data, dict):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({field: ["This field cannot be set here."] for field in unknown})
        return super().validate(attrs)


class PhoneField(serializers.CharField):
    """A phone number in any common notation, stored in E.164."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 32)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value:
            return value
        try:
            return normalize_phone(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
