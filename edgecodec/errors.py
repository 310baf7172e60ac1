"""The one error type the command line turns into a clear message and a non-zero exit."""


class FlowError(Exception):
    """A problem with the user's input or environment (config, checkpoint, video, tool)."""
