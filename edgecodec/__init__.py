"""edgecodec: a hardware flow for edge neural video codecs (ASE-GRU, STAE)."""

__version__ = "0.1.0"
