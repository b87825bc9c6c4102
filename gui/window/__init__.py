"""The desktop window (PySide6). Depends on the engine; the engine never imports this."""
