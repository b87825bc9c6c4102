"""Dockpool: build many Docker images at once, push them through a small pool.

Kept free of imports: spawned worker processes import this package first.
"""

__version__ = "0.1.0"
