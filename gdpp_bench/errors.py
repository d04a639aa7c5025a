"""The one exception type for mistakes in what the user typed or supplied."""


class UserError(Exception):
    """A bad input (suite, variant, path, checkpoint...). The CLI prints it as one line, exit 2."""
