"""A real C++ kernel bench whose candidates can be made to fail on purpose (config key "fault"):
crash (os._exit), segfault, hang, raise, an illegal memory access (the CUDA error after which a
worker must be replaced), or corrupt the output after computing it (a fast, wrong kernel). Loaded by the tuning workers from this file (Task.runner = "<this file>:FaultyBench")."""
from __future__ import annotations

import ctypes
import os
import time

from braze.ir.kernel_interpret import view_tensor
from braze.tune.kernel_bench import KernelBench


class FaultyBench(KernelBench):
    def _candidate(self, config: dict):
        fault = config.get("fault")
        clean = {k: v for k, v in config.items() if k != "fault"}
        run = self._compile_clean(clean)
        if fault is None:
            return run

        def faulty(flat):
            if fault == "crash":
                os._exit(7)
            if fault == "segfault":
                ctypes.string_at(0)
            if fault == "hang":
                time.sleep(3600)
            if fault == "raise":
                raise RuntimeError("this candidate does not compile")
            if fault == "illegal_address":  # what torch raises after a kernel's out-of-bounds access
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            run(flat)
            if fault == "wrong":
                view_tensor(flat, self.kernel.output, self.symbols).add_(0.25)
        return faulty

    def _compile_clean(self, config: dict):
        """The real C++ candidate (KernelBench compiles by the task's runner name, "cpp")."""
        import dataclasses
        real = self.task
        self.task = dataclasses.replace(real, runner="cpp")
        try:
            return KernelBench._candidate(self, config)
        finally:
            self.task = real
