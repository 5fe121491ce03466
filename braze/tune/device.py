"""Who is being tuned for: the device's identity (part of every tuning-database key) and the
hardware numbers the search spaces and the cost model's features need."""
from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass

H100_SMEM_BYTES = 232448  # usable shared memory per block on sm_90 (cudaDevAttrMaxSharedMemoryPerBlockOptin)


@dataclass(frozen=True)
class DeviceInfo:
    kind: str            # "cpu" | "cuda"
    name: str            # "NVIDIA H100 80GB HBM3", or the CPU model name
    capability: str      # "9.0"; for a CPU its thread count ("cpu-16")
    versions: str        # "braze=..;torch=..;triton=.." (a new version invalidates measurements)
    num_sms: int = 1     # streaming multiprocessors (CUDA) or cores (CPU)
    smem_bytes: int = H100_SMEM_BYTES
    target: str = "cpp"  # the backend that runs there: "cpp" or "triton"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version
    parts = []
    for package in ("braze", "torch", "triton"):
        try:
            parts.append(f"{package}={version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package}=none")
    return ";".join(parts)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=None)
def device_info(device: str = "cpu") -> DeviceInfo:
    """The identity of `device` ("cpu" or "cuda"); under TRITON_INTERPRET=1 a "cuda" request on a
    machine without a GPU is the interpreter, named as such (its measurements are not GPU times)."""
    import torch
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        smem = getattr(props, "shared_memory_per_block_optin", H100_SMEM_BYTES)
        return DeviceInfo("cuda", props.name, f"{props.major}.{props.minor}", _versions(),
                          props.multi_processor_count, smem, "triton")
    if device == "cuda":
        if os.environ.get("TRITON_INTERPRET") != "1":
            from braze.errors import InvalidArgumentError
            raise InvalidArgumentError("device 'cuda' asked for, but torch sees no CUDA GPU; use --device cpu")
        return DeviceInfo("cuda", "triton-interpreter", "interp", _versions(), 132, H100_SMEM_BYTES, "triton")
    threads = torch.get_num_threads()
    return DeviceInfo("cpu", _cpu_name(), f"cpu-{threads}", _versions(), threads, 1 << 20, "cpp")
