"""The one compiled part: sampan.kernel._syscall (see its source for why).

optional: without a C compiler or Python's headers the install goes on, and the kernel
layer uses the same calls through ctypes (kernel/_ctypes_syscall.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sampan.kernel._syscall", ["src/sampan/kernel/_syscall.c"],
                             optional=True)])
