"""Images as Docker knows them: references, the image store and its import/export formats."""

from .config import ExecUser, ImageConfigError, ProcessConfig, process_config, resolve_user
from .dockerarchive import load, save
from .layout import export_layout, import_layout
from .reference import InvalidReference, Reference, parse_any, parse_docker_ref, parse_normalized
from .store import DEFAULT_ROOT, Image, ImageConflict, ImageError, ImageNotFound, ImageStore

__all__ = ["DEFAULT_ROOT", "ExecUser", "Image", "ImageConfigError", "ImageConflict",
           "ImageError", "ImageNotFound", "ImageStore", "InvalidReference", "ProcessConfig",
           "Reference", "export_layout", "import_layout", "load", "parse_any",
           "parse_docker_ref", "parse_normalized", "process_config", "resolve_user", "save"]
