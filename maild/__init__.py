"""maild: an email-driven automation daemon for standard communication processes."""

__version__ = "0.1.0"
