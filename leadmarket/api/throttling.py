"""DRF throttles on the shared rate-limit counters: 429 with Retry-After, and no 500 when
the cache is down (the counters fail open)."""

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from .client import client_ip
from .ratelimit import Limit, hit


class RateThrottle(BaseThrottle):
    group: str
    rate_setting: str

    def client_key(self, request) -> str:
        return f"ip:{client_ip(request) or 'unknown'}"

    def allow_request(self, request, view) -> bool:
        limit = Limit(self.group, getattr(settings, self.rate_setting))
        self._wait = hit(request, limit, self.client_key(request))
        return self._wait is None

    def wait(self):
        return self._wait


class ApiRateThrottle(RateThrottle):
    """Every API request, per user when authenticated, else per address."""

    group = "api"
    rate_setting = "API_RATE_LIMIT"

    def client_key(self, request) -> str:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return f"user:{user.pk}"
        return super().client_key(request)


class RegistrationThrottle(RateThrottle):
    group = "registration"
    rate_setting = "REGISTRATION_RATE_LIMIT"


class TokenRefreshThrottle(RateThrottle):
    group = "token-refresh"
    rate_setting = "TOKEN_REFRESH_RATE_LIMIT"
