"""`_syscall.c`'s interface on ctypes, for an install that could not compile it.

The same calls, about 4 ms slower to import (ctypes, its library, the C library's handle):
    syscall(nr, *args) -> the call's result, or -errno
    address(buffer) -> where a buffer's bytes are
    getcpu() -> the CPU this thread runs on (sched_getcpu(3): no system call)
"""

from __future__ import annotations

import ctypes

_libc = ctypes.CDLL(None, use_errno=True)
_raw = _libc.syscall
_raw.restype = ctypes.c_long


def _arg(value: object) -> object:
    if value is None or isinstance(value, bytes):
        return value  # NULL, or a pointer to the bytes (NUL-terminated, as C strings are)
    if isinstance(value, int):
        return ctypes.c_long(ctypes.c_ulong(value).value)  # flags above LONG_MAX: their bits
    view = memoryview(value)  # type: ignore[arg-type]
    if view.readonly:
        return ctypes.c_char_p(view.tobytes())
    return (ctypes.c_char * view.nbytes).from_buffer(view)


def syscall(nr: int, *args: object) -> int:
    if len(args) > 6:
        raise TypeError("syscall(nr, *args): 0 to 6 arguments after nr")
    result = int(_raw(ctypes.c_long(nr), *(_arg(a) for a in args)))
    return -ctypes.get_errno() if result == -1 else result


def address(buffer: object) -> int:
    if isinstance(buffer, bytes):
        return ctypes.cast(ctypes.c_char_p(buffer), ctypes.c_void_p).value or 0
    view = memoryview(buffer)  # type: ignore[arg-type]
    return ctypes.addressof((ctypes.c_char * view.nbytes).from_buffer(view))


def getcpu() -> int:
    cpu = int(_libc.sched_getcpu())
    if cpu < 0:
        raise OSError(ctypes.get_errno(), "sched_getcpu")
    return cpu
