"""Errors of analytics that reach the caller."""


class QueryError(ValueError):
    """The caller asked for something invalid; the message says what and is safe to return as a 400."""
