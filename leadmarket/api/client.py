from django.conf import settings


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or the entry that the trusted proxies added.

    With TRUSTED_PROXY_COUNT = N, the Nth address from the right of X-Forwarded-For is
    the one the outermost trusted proxy saw; anything left of it is client-supplied.
    """
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR")
