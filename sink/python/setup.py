"""Installs the vgsink package offline: `pip install ./sink/python` with Debian's
python3-pip (no third-party dependency). The C hot path (vgsink/_fast.c) is
built when a compiler and python3-dev are there; without them the package
falls back to ctypes. libvgsink.so.0 itself comes from `make install`."""

import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))

setup(
    name="vgsink",
    version="0.1.0",
    description="libvgsink for Python workers: a drop-in RemoteCollectorSink",
    packages=["vgsink"],
    python_requires=">=3.9",
    ext_modules=[Extension("vgsink._fast", ["vgsink/_fast.c"],
                           include_dirs=[os.path.join(HERE, "..")],
                           extra_compile_args=["-O2", "-std=c11"],
                           optional=True)],
)
