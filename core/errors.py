"""The one error type users see: a one-line message the CLI turns into exit code 2."""


class NeuratermError(Exception):
    """Bad input from the user (preset, model folder, dataset, device); the message is one line."""
