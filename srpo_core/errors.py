class UserError(Exception):
    """An error the user caused (bad input, missing run, corrupt file). The CLI prints its
    message on one line and exits with code 2."""
