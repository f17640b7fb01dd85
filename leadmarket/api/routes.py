from django.urls import path


def slashless(route: str, view, name: str | None = None) -> list:
    """The route without a trailing slash (the contract's path) and with one."""
    return [path(route, view, name=name), path(f"{route}/", view)]
