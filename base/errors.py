"""The project's error types. The command line turns any of them into one clear message and exit status 2."""


class EdgecodecError(Exception):
    """A problem with the user's input or environment (config, checkpoint, video, stream, tool)."""


class ConfigError(EdgecodecError):
    """A configuration value that cannot work; the message names the field."""


class BitstreamError(EdgecodecError):
    """A bitstream (file container or entropy-coded payload) is malformed, truncated or corrupt."""


def check_config(ok: bool, message: str) -> None:
    """Raise a ConfigError with `message` (which names the field) unless `ok`."""
    if not ok:
        raise ConfigError(f"invalid config: {message}")
