from django.conf import settings

from .envelope import failure_response


class ApiBodyLimitMiddleware:
    """Refuses an oversized /api/ body with an enveloped 413 before anything reads it.

    DRF parses the request stream directly, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE
    does not guard JSON bodies; the declared length is checked here instead. Webhooks
    enforce their own (smaller) limit so that an oversized post is audited too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/") and not request.path.startswith("/api/webhooks/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return failure_response(400, "Invalid Content-Length header.")
            if length > settings.API_MAX_BODY_BYTES:
                return failure_response(413, "Request body is too large.")
        return self.get_response(request)
