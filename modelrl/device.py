"""Choosing the torch device at run time."""

from __future__ import annotations

import hashlib
import re
import warnings

import torch

from modelrl.errors import ConfigError

# The devices modelrl's agents are built and tested on; torch knows more names (mps, meta, xpu) that parse
# but then fail, or silently do nothing, on the first tensor.
_DEVICE = re.compile(r"cpu|cuda(:(\d+))?")


def check_device_name(name: str) -> re.Match | None:
    """Raise on a device name modelrl does not run on, without touching CUDA (a process that has cannot fork
    workers that use it)."""
    match = _DEVICE.fullmatch(name)
    if match is None and name != "auto":
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    return match


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' is CUDA when present, else CPU; an explicit device that isn't there is an error."""
    match = check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but CUDA is not available")
        count = torch.cuda.device_count()
        if match.group(2) is not None and int(match.group(2)) >= count:
            raise ConfigError(f"device {name!r} asked for, but this machine has {count} CUDA device(s)")
    return torch.device(name)


def restore_generator(generator: torch.Generator, state: torch.Tensor) -> None:
    """`generator.set_state(state)`, or, for a state saved on another kind of device (CPU and CUDA
    generators keep states of different kinds), a reseed from that state with a warning: the run resumes,
    but its random draws no longer continue the saved stream."""
    if state.numel() == generator.get_state().numel():
        generator.set_state(state)
        return
    warnings.warn(f"this random stream was saved on another kind of device than {generator.device.type}; "
                  "it restarts from a seed taken from the saved state, so the resumed run will not repeat an "
                  "uninterrupted one", stacklevel=2)
    digest = hashlib.sha256(state.numpy().tobytes()).digest()
    generator.manual_seed(int.from_bytes(digest[:8], "little") >> 1)


# Compute precisions an agent's matmuls may autocast to (weights, losses and optimiser state stay float32).
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}


def cpu_has_native_bfloat16() -> bool:
    """AVX512-BF16 or AMX: without them a CPU emulates bfloat16 matmuls, tens of times slower than float32."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def check_precision(key: str, value: str) -> None:
    if value not in PRECISIONS:
        raise ConfigError(f"{key} must be one of {sorted(PRECISIONS)}, got {value!r}")


def compute_dtype(key: str, precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype `precision` autocasts to on `device` (None: float32, no autocast), warning where it would
    run slower than float32."""
    dtype = PRECISIONS[precision]
    if dtype == torch.bfloat16 and device.type == "cpu" and not cpu_has_native_bfloat16():
        # measured on an AVX2-only CPU: a 256 x 256 x 256 matmul took 25 ms in bfloat16 against 0.4 in float32
        warnings.warn(f"{key}='bfloat16' on a CPU without native bfloat16 (AVX512-BF16 or AMX) runs its "
                      "matmuls in software, tens of times slower than float32", RuntimeWarning, stacklevel=3)
    return dtype


def require_cpp_compiler() -> None:
    """torch.compile's CPU kernels are C++: without a compiler the first update would fail deep in
    inductor."""
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception as error:
        raise ConfigError("compile=True on the CPU needs a C++ compiler (install g++ or set CXX): "
                          f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from error
