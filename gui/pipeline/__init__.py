"""Dockpool's Qt-free engine: project files, the build→push pipeline, reports.

Both the CLI and the window drive this package; it never imports Qt. Import
from its modules (gui.pipeline.project, gui.pipeline.supervisor, …): this file
stays empty because every worker process imports the package first, and a
worker must not pay for the project loader or the Dockerfile parser.
"""
