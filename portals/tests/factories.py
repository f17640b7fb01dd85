from django.utils import timezone

from portals import services
from portals.models import Portal


def make_portal(code: str = "acme", **fields) -> tuple[Portal, str]:
    """A portal and its API key, created through the service like staff would."""
    issued = services.create_portal(actor=None, data={"code": code, "name": code.title(), **fields}, now=timezone.now())
    return issued.portal, issued.api_key


def make_signed_portal(code: str = "signed", **fields) -> tuple[Portal, str, str]:
    issued = services.create_portal(actor=None, data={"code": code, "name": code.title(), **fields}, now=timezone.now())
    return issued.portal, issued.api_key, issued.portal.signing_secret
