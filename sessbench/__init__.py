"""sessbench: a benchmark suite for session-based recommendation."""

__version__ = "0.1.0"
