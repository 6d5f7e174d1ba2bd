"""One exception type a user can act on; the CLIs print its message in one line."""


class MilanError(Exception):
    """A problem with the user's input or environment, with a message that says what to do."""
