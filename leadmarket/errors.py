"""Domain errors that services raise; the API exception handler maps each to its status.

Services stay free of HTTP, but a rule broken by the caller carries the status a client
should see and, where one field is to blame, the field errors.
"""


class DomainError(Exception):
    status_code = 400
    default_message = "The request cannot be carried out."

    def __init__(self, message: str | None = None, *, errors: dict[str, list[str]] | None = None):
        self.message = message or self.default_message
        self.errors = errors or {}
        super().__init__(self.message)


class Conflict(DomainError):
    """The request is valid but clashes with the current state (409)."""

    status_code = 409
    default_message = "The request conflicts with the current state."


class NotFound(DomainError):
    """The object is unknown or not the caller's (404)."""

    status_code = 404
    default_message = "Not found."
