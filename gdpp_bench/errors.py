"""The one exception type for mistakes in what the user typed or supplied, and the line a Ctrl-C
that came before any run was handed out ends with."""


class UserError(Exception):
    """A bad input (suite, variant, path, checkpoint...). The CLI prints it as one line, exit 2."""


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C whose one line has been printed (what it stopped); any other KeyboardInterrupt
    came before a run was handed out and ends with INTERRUPTED_BEFORE_ANY_RUN."""


INTERRUPTED_BEFORE_ANY_RUN = (
    "interrupted: stopped before anything more was done; every run folder resumes "
    "from its last checkpoint: rerun the same command"
)
