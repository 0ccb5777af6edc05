"""The error every service raises when a business rule refuses a change (its message is for the user)."""


class ServiceError(Exception):
    """A business rule refused the change; the message is for the user."""
