import phonenumbers

DEFAULT_REGION = "US"


def normalize_phone(value: str) -> str:
    """The number in E.164 (`+12125550100`); raises ValueError when it is not a valid number.

    Numbers without a country code are read as US numbers.
    """
    try:
        number = phonenumbers.parse(value, DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("Enter a valid phone number.") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("Enter a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
