"""`torch.compile(model, backend="braze")`: registered when braze is imported.

Dynamo's graph is lowered to ATen (aot_autograd); the nodes braze has rules for are grouped into
connected regions (torch.fx's CapabilityBasedPartitioner), each region is compiled through braze's
passes and kernels, and the rest runs as ATen. `stats` counts the nodes of each kind; with
BRAZE_DEBUG=1 every fallback says why. braze compiles inference: with autograd recording, the
graph runs as ATen unchanged.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import torch

from braze.debug import log
from braze.errors import BrazeError
from braze.module_compiler import CompiledGraph
from braze.frontend.torch_export import import_fx, supports


@dataclass
class BackendStats:
    compiled_nodes: int = 0  # ATen nodes that run inside braze kernels
    fallback_nodes: int = 0  # ATen nodes left to PyTorch (tuple indexing is not counted)
    regions: int = 0         # braze executables built

    def reset(self) -> None:
        self.compiled_nodes = self.fallback_nodes = self.regions = 0


stats = BackendStats()


class _Region(torch.nn.Module):
    """One partition as a braze executable, called with the partition's inputs in order (a Module,
    so it takes the partition's place in the fused GraphModule)."""

    def __init__(self, module: torch.fx.GraphModule, device: str):
        super().__init__()
        inputs = [n.name for n in module.graph.nodes if n.op == "placeholder"]
        self.compiled = CompiledGraph(import_fx(module.graph, {}, name="torch_compile_region"), inputs, device)
        out = next(n for n in module.graph.nodes if n.op == "output")
        self.returns_tuple = isinstance(out.args[0], (tuple, list))

    def forward(self, *args):
        results = self.compiled.run(*args)
        return results if self.returns_tuple else results[0]


def _compile_aten(gm: torch.fx.GraphModule, example_inputs):
    from torch._subclasses.fake_tensor import unset_fake_temporarily
    from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
    from torch.fx.passes.operator_support import OperatorSupportBase

    devices = {t.device.type for t in example_inputs if isinstance(t, torch.Tensor)}
    if len(devices) != 1:
        stats.fallback_nodes += sum(1 for n in gm.graph.nodes if n.op == "call_function")
        log(1, f"braze backend: inputs on {sorted(devices)}: the graph runs as ATen")
        return gm.forward
    device = devices.pop()

    class BrazeSupport(OperatorSupportBase):
        def is_node_supported(self, submodules, node: torch.fx.Node) -> bool:
            ok = supports(node)
            if not ok and node.op == "call_function":
                log(1, f"braze backend: {node.target} ({node.name}) runs as ATen: no braze rule")
            return ok

    partitioner = CapabilityBasedPartitioner(gm, BrazeSupport(), allows_single_node_partition=True)
    fused = partitioner.fuse_partitions(partitioner.propose_partitions())
    for node in list(fused.graph.nodes):
        if node.op != "call_module" or not node.target.startswith("fused_"):
            continue
        submodule = getattr(fused, node.target)
        inner = [n for n in submodule.graph.nodes if n.op == "call_function" and n.target is not operator.getitem]
        try:
            # the compiler runs under dynamo's fake-tensor mode: the arena must be real memory
            with unset_fake_temporarily():
                region = _Region(submodule, device)
        except BrazeError as e:  # a rule refused this form (a shape, a dim): the region stays ATen
            log(1, f"braze backend: a region of {len(inner)} nodes runs as ATen: {e}")
            stats.fallback_nodes += len(inner)
            continue
        setattr(fused, node.target, region)  # the GraphModule calls it like the submodule
        stats.compiled_nodes += len(inner)
        stats.regions += 1
    left = [n for n in fused.graph.nodes if n.op == "call_function" and n.target is not operator.getitem]
    log(1, f"braze backend: {len(left)} ATen nodes outside braze regions: {', '.join(str(n.target) for n in left)}")
    stats.fallback_nodes += len(left)
    fused.recompile()
    return fused.forward


def braze_backend(gm: torch.fx.GraphModule, example_inputs):
    """The torch.compile backend: ATen through aot_autograd, then braze regions (see module doc)."""
    from torch._dynamo.backends.common import aot_autograd

    # dynamo guards on grad mode, so this is the mode the graph will run in
    if torch.is_grad_enabled() and any(getattr(t, "requires_grad", False) for t in example_inputs):
        stats.fallback_nodes += sum(1 for n in gm.graph.nodes if n.op in ("call_function", "call_method",
                                                                           "call_module"))
        log(1, "braze backend: autograd is recording: the graph runs as PyTorch (braze compiles inference)")
        return gm.forward
    return aot_autograd(fw_compiler=_compile_aten)(gm, example_inputs)


def register() -> None:
    """Make backend="braze" known to torch.compile (the package's entry point also does, lazily)."""
    from torch._dynamo import list_backends, register_backend

    if "braze" not in list_backends(exclude_tags=()):
        register_backend(name="braze")(braze_backend)
