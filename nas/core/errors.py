"""The one exception type for bad user input; the CLI prints it in one line and exits 2."""


class UserError(Exception):
    """Bad input from the user (file, preset name, option value): message names the problem."""
