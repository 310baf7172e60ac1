"""Fixed point: Brevitas QAT cell, QONNX export, integer golden model (docs/numerics.md)."""
