from rest_framework import serializers

from leadmarket.phones import normalize_phone
from leadmarket.zipcodes import InvalidZip, lookup_zip


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


class ZipCodeField(serializers.CharField):
    """A real US ZIP code from the offline dataset, given as a string; stored as its five digits.

    A number is refused: JSON numbers lose the leading zeros of ZIP codes such as 02108.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 10)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError('Enter the ZIP code as a string, e.g. "02108".')
        value = super().to_internal_value(data)
        try:
            return lookup_zip(value).zipcode
        except InvalidZip as exc:
            raise serializers.ValidationError(str(exc)) from exc
