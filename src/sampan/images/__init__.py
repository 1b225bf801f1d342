"""Images as Docker knows them: references, the image store and its import/export formats."""

from .config import (
    EngineConfig,
    ExecUser,
    ImageConfigError,
    ProcessConfig,
    RuntimeConfig,
    process_config,
    resolve_user,
    runtime_config,
)
from .dockerarchive import load, save
from .instructions import ChangeError, apply_changes
from .layout import export_layout, import_layout
from .reference import InvalidReference, Reference, parse_any, parse_docker_ref, parse_normalized
from .rootfs import export_container, export_tree, import_image
from .store import DEFAULT_ROOT, Image, ImageConflict, ImageError, ImageNotFound, ImageStore

__all__ = ["DEFAULT_ROOT", "ChangeError", "EngineConfig", "ExecUser", "Image",
           "ImageConfigError", "ImageConflict", "ImageError", "ImageNotFound", "ImageStore",
           "InvalidReference", "ProcessConfig", "Reference", "RuntimeConfig", "apply_changes",
           "export_container", "export_layout", "export_tree", "import_image",
           "import_layout", "load", "parse_any", "parse_docker_ref", "parse_normalized",
           "process_config", "resolve_user", "runtime_config", "save"]
