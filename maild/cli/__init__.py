"""The ``maild`` command line: the user's stable interface (docs/SPECIFICATION.md)."""
