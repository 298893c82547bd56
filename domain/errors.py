"""Errors raised when a domain rule is broken."""


class DomainError(ValueError):
    """A domain invariant was violated; the message says which and why, in one line."""
