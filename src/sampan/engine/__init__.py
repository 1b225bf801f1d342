"""The engine behind sampand: containers made from images, run under a monitor each (sampan's
own, forked warm, or conmon), persisted under the data root so that a restarted daemon
finds them again."""

from .engine import Engine, EngineOptions
from .errors import Conflict, EngineError, InvalidParameter, NotFound, NotModified

__all__ = ["Conflict", "Engine", "EngineError", "EngineOptions", "InvalidParameter",
           "NotFound", "NotModified"]
