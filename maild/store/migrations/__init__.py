"""maild's schema migrations, tortoise's own (``maild.store.schema`` says how to add one)."""
