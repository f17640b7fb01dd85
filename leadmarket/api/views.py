"""Django-level error handlers: enveloped JSON under /api/, Django's pages elsewhere."""

from django.views import csrf as csrf_views
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from .envelope import failure_response


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception):
    if _is_api(request):
        return failure_response(400, "Bad request.")
    return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    if _is_api(request):
        return failure_response(403, "You do not have permission to perform this action.")
    return defaults.permission_denied(request, exception)


def not_found(request, exception):
    if _is_api(request):
        return failure_response(404, "Not found.")
    return defaults.page_not_found(request, exception)


@csrf_exempt  # an unknown path is a 404 for every method, not a CSRF page
def api_not_found(request, *args, **kwargs):
    return failure_response(404, "Not found.")


def csrf_failure(request, reason=""):
    if _is_api(request):
        return failure_response(403, "CSRF verification failed.")
    return csrf_views.csrf_failure(request, reason=reason)


def server_error(request):
    if _is_api(request):
        return failure_response(500, "Internal server error.")
    return defaults.server_error(request)
