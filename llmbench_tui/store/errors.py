"""The store's one error type, raised with a sentence for the user."""


class StoreError(Exception):
    """A store problem explained in one sentence a user can act on."""
