"""Django's session, authentication and messages middleware for the HTML site only.

They serve the admin site (cookie sessions, CSRF tokens, flash messages). The JSON API
authenticates with bearer tokens in DRF, so on /api/ these middleware only cost time
(lazy session and user objects, message storage, header bookkeeping on every webhook);
for /api/ paths they step aside. CSRF stays as it is: API views are CSRF-exempt, so it
costs nothing there, and `check --deploy` wants Django's own middleware.
"""

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware

API_PREFIX = "/api/"


def _site_only(middleware):
    class SiteOnly(middleware):
        def __call__(self, request):
            if request.path_info.startswith(API_PREFIX):
                return self.get_response(request)
            return super().__call__(request)

        def process_view(self, request, *args, **kwargs):
            if request.path_info.startswith(API_PREFIX) or not hasattr(super(), "process_view"):
                return None
            return super().process_view(request, *args, **kwargs)

    SiteOnly.__name__ = SiteOnly.__qualname__ = middleware.__name__
    return SiteOnly


SiteSessionMiddleware = _site_only(SessionMiddleware)
SiteAuthenticationMiddleware = _site_only(AuthenticationMiddleware)
SiteMessageMiddleware = _site_only(MessageMiddleware)
