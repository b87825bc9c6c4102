"""Dockpool's Qt-free engine: project files, the build→push pipeline, reports.

Both the CLI and the window drive this package; it never imports Qt, because
its worker module is loaded in every spawned builder and pusher process.
"""

from .docker_engine import EngineInfo, EngineUnreachable, connect
from .project import ImageSpec, Project, ProjectError, load, save
from .report import ImageResult, RunReport
from .supervisor import Pipeline, RunOptions

__all__ = [
    "EngineInfo", "EngineUnreachable", "ImageResult", "ImageSpec", "Pipeline", "Project",
    "ProjectError", "RunOptions", "RunReport", "connect", "load", "save",
]
