"""``torch.compile`` for the Trainer: compiling modules in place, and telling compile errors apart."""
from __future__ import annotations

import logging
import os
import shutil
from typing import Iterable

import torch
from torch import nn

from pixseq.errors import PixseqError


def compile_modules(modules: Iterable[nn.Module], device: torch.device) -> None:
    """``torch.compile`` each module's forward in place (``nn.Module.compile``).

    In place rather than ``torch.compile(module)``: the parameters keep their names, so
    checkpoints, EMA and resume are the same as in eager mode, and a run may switch
    ``compile`` on or off when resumed. Only ``forward`` (i.e. ``module(...)`` calls) is
    compiled; a task's work done through other methods runs eagerly. On CPU the generated
    code is C++, so a missing compiler is reported here rather than at the first step."""
    if device.type == "cpu" and not _cxx_available():
        raise PixseqError("compile on CPU needs a C++ compiler for torch.compile's generated code and none was "
                          "found (install g++, e.g. apt-get install g++, or set CXX); or train without --compile")
    # cpp_extension warns "No CUDA runtime is found" on every CPU-only machine: noise here
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    # Donated buffers (freed during compiled backward) forbid backward(retain_graph=True),
    # which losses that take gradients of gradients need (VQGAN's adaptive GAN weight).
    import torch._functorch.config as functorch_config

    functorch_config.donated_buffer = False
    for m in modules:
        m.compile()


def _cxx_available() -> bool:
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler  # what inductor itself will use
    except ImportError:  # another torch layout: look for the usual names
        return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)
    try:
        get_cpp_compiler()
    except RuntimeError:  # InvalidCxxCompiler
        return False
    return True


_COMPILE_PACKAGES = ("torch._dynamo", "torch._inductor", "torch._functorch")


def is_compile_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from torch.compile's machinery: one of its exception types, or
    any error raised while its tracer, compiler or compiled autograd functions were running
    (those raise plain RuntimeErrors too, e.g. a retained graph through compiled backward)."""
    if any(c.__module__.startswith(_COMPILE_PACKAGES) for c in type(exc).__mro__):
        return True
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_COMPILE_PACKAGES):
            return True
        tb = tb.tb_next
    return False
