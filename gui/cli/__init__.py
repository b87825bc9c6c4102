"""The command-line runner; depends on the engine, never on the window."""

from .main import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_ENGINE_UNREACHABLE, EXIT_FAILED, EXIT_OK, main, usage

__all__ = ["EXIT_BAD_INPUT", "EXIT_CANCELLED", "EXIT_ENGINE_UNREACHABLE", "EXIT_FAILED", "EXIT_OK",
           "main", "usage"]
