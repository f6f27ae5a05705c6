"""Node executors, one module per family; importing this package registers them all."""

from . import io

__all__ = ["io"]
