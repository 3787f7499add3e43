"""Typed domain errors.  `message` is already translated (the user reads it)."""


class DomainError(Exception):
    def __init__(self, message, **details):
        super().__init__(str(message))
        self.message = message
        self.details = details

    def __str__(self):
        return str(self.message)


class ValidationFailed(DomainError):
    """Input breaks a rule (bad ID number, dates outside the year, ...)."""


class OutOfScope(DomainError):
    """The row exists but lies outside the user's scope (reported as not found)."""


class InvalidTransition(DomainError):
    """A status change the status machine does not allow, or a lost race."""
