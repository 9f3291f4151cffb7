"""Opening a GGUF model with llama.cpp's CPU features that are safe on this machine.

llama.cpp built from source (as ``pip install llama-cpp-python`` does) compiles for the
building CPU. Where that CPU reports Intel AMX, the weights are repacked into AMX buffers
("extra buffer types"), and on some machines (seen on a virtualised Sapphire Rapids host with
llama-cpp-python 0.3.36) the first AMX matrix product ends the process with SIGSEGV. There
the model is opened without extra buffer types: the plain CPU kernels, same weights.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_PATCH_LOCK = threading.Lock()
CPUINFO = Path("/proc/cpuinfo")


def cpu_has_amx(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU reports AMX tiles (``amx_tile`` in ``/proc/cpuinfo``'s flags)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return "amx_tile" in line.split(":", 1)[-1].split()
    return False


@contextlib.contextmanager
def _model_params_without_extra_buffers(llama_module: Any) -> Iterator[None]:
    """While open, models load with ``use_extra_bufts = False`` (llama-cpp-python builds its
    model parameters from ``llama_model_default_params`` and has no argument for this)."""
    low_level = llama_module.llama_cpp
    default = low_level.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = default()
        params.use_extra_bufts = False
        return params

    with _PATCH_LOCK:
        low_level.llama_model_default_params = without_extra_buffers
        try:
            yield
        finally:
            low_level.llama_model_default_params = default


def open_llama(model_path: str, *, use_extra_buffers: bool | None = None, **kwargs: Any) -> Any:
    """``llama_cpp.Llama(model_path, **kwargs)``; extra (repacking) buffer types are off where
    the CPU has AMX unless ``use_extra_buffers`` says otherwise."""
    import llama_cpp.llama as llama_module

    if use_extra_buffers is None:
        use_extra_buffers = not cpu_has_amx()
    if use_extra_buffers:
        return llama_module.Llama(model_path=model_path, **kwargs)
    with _model_params_without_extra_buffers(llama_module):
        return llama_module.Llama(model_path=model_path, **kwargs)
