"""Compile any PyTorch module through braze: torch.export -> Graph IR -> passes -> kernels.

    fast = braze.compile_module(model, torch.randn(4, 64))   # the example fixes the input shapes
    y = fast(torch.randn(4, 64))                             # same outputs as model(x)
"""
from __future__ import annotations

import torch

from braze.errors import CompilationError, InvalidArgumentError
from braze.frontend.torch_export import import_exported
from braze.ir.graph import Graph
from braze.passes.pipeline import lower
from braze.runtime.executable import DEFAULT_BACKEND, Executable


def export_graph(module: torch.nn.Module, example_args: tuple) -> tuple[Graph, list[str]]:
    """Graph IR of module(*example_args) through torch.export, and its input names in call order."""
    try:
        exported = torch.export.export(module.eval(), tuple(example_args))
    except Exception as e:  # noqa: BLE001  (any tracing failure, said in one line)
        raise CompilationError(f"torch.export could not trace {type(module).__name__}: "
                               f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:300]}") from e
    inputs = [n.name for n in exported.graph.nodes
              if n.op == "placeholder" and n.name in exported.graph_signature.user_inputs]
    return import_exported(exported, name=type(module).__name__), inputs


class CompiledGraph:
    """A Graph IR function (outputs out0, out1, ...) as one braze Executable."""

    def __init__(self, graph: Graph, input_names: list[str], device: str = "cpu", backend: str | None = None):
        self.graph, self.input_names, self.device = graph, input_names, device
        self.program = lower(graph)
        self.executable = Executable(self.program, backend=backend or DEFAULT_BACKEND[device], device=device,
                                     fresh_outputs=True)
        buffers = dict(self.program.outputs)
        # computed outputs are new tensors each call; one that is an input or a constant is copied,
        # so the caller never holds an alias of its argument or of braze's weights
        self.copied_outputs = {name for name, buf in buffers.items() if self.program.buffer(buf).kind != "temp"}

    def run(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.executable.run({name: a.contiguous() for name, a in zip(self.input_names, args)})
        names = [f"out{i}" for i in range(len(outputs))]
        return tuple(outputs[n].clone() if n in self.copied_outputs else outputs[n] for n in names)


class CompiledModule(CompiledGraph):
    """A module's forward as one braze Executable (static shapes: those of the example inputs)."""

    def __init__(self, module: torch.nn.Module, *example_args: torch.Tensor, device: str = "cpu",
                 backend: str | None = None):
        super().__init__(*export_graph(module, example_args), device=device, backend=backend)

    def __call__(self, *args: torch.Tensor):
        if len(args) != len(self.input_names):
            raise InvalidArgumentError(f"expected {len(self.input_names)} inputs, got {len(args)}")
        results = self.run(*(a.to(self.device) for a in args))
        return results[0] if len(results) == 1 else results


def compile_module(module: torch.nn.Module, *example_args: torch.Tensor, device: str = "cpu",
                   backend: str | None = None) -> CompiledModule:
    return CompiledModule(module, *example_args, device=device, backend=backend)
