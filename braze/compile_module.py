"""Compile any PyTorch module through braze: torch.export -> Graph IR -> passes -> kernels.

    fast = braze.compile_module(model, torch.randn(4, 64))   # the example fixes the input shapes
    y = fast(torch.randn(4, 64))                             # same outputs as model(x)
"""
from __future__ import annotations

import torch

from braze.errors import CompilationError, InvalidArgumentError
from braze.frontend.torch_export import import_exported
from braze.passes.pipeline import lower
from braze.runtime.executable import DEFAULT_BACKEND, Executable


class CompiledModule:
    """A module's forward as one braze Executable (static shapes: those of the example inputs)."""

    def __init__(self, module: torch.nn.Module, *example_args: torch.Tensor, device: str = "cpu",
                 backend: str | None = None):
        try:
            exported = torch.export.export(module.eval(), tuple(example_args))
        except Exception as e:  # noqa: BLE001  (any tracing failure, said in one line)
            raise CompilationError(f"torch.export could not trace {type(module).__name__}: "
                                   f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:300]}") from e
        self.graph = import_exported(exported, name=type(module).__name__)
        self.program = lower(self.graph)
        self.executable = Executable(self.program, backend=backend or DEFAULT_BACKEND[device], device=device)
        self.input_names = [n.name for n in exported.graph.nodes
                            if n.op == "placeholder" and n.name in exported.graph_signature.user_inputs]
        self.single = len(self.program.outputs) == 1
        self.device = device

    def __call__(self, *args: torch.Tensor):
        if len(args) != len(self.input_names):
            raise InvalidArgumentError(f"expected {len(self.input_names)} inputs, got {len(args)}")
        feeds = {name: a.to(self.device).contiguous() for name, a in zip(self.input_names, args)}
        outputs = self.executable.run(feeds)
        # temps are views of the executable's arena, overwritten by the next call: hand out copies
        results = tuple(outputs[f"out{i}"].clone() for i in range(len(outputs)))
        return results[0] if self.single else results


def compile_module(module: torch.nn.Module, *example_args: torch.Tensor, device: str = "cpu",
                   backend: str | None = None) -> CompiledModule:
    return CompiledModule(module, *example_args, device=device, backend=backend)
