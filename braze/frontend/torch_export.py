"""torch.export frontend: an ExportedProgram (ATen ops) into Graph IR.

    graph = import_exported(torch.export.export(module, (x,)))

Parameters become weights, user inputs become inputs (the example's static shapes), the program's
outputs become `out0`, `out1`, ... Each ATen op is rewritten by its rule (torch_ops.py) as the
Graph IR ops that mean the same thing; an op with no rule is an UnsupportedOpError that names it
and lists the supported ones. `SUPPORTED_OPS` is the table docs/torch-ops.md is generated from.

Constant folding at import: buffers, lifted constants and the results of ops with no tensor
inputs (arange, full, ones) are values known now, and so is every op all of whose tensor inputs
are: torch computes those here, whatever the op (cumsum, index, diff, comparisons: the masks and
positions transformers derives from shapes, rotary cos/sin from the inv_freq buffer). Only where
a known value meets a run-time one does it become a Graph IR weight. So kernels never see the
shape arithmetic, and a causal mask arrives at scaled_dot_product_attention as a known tensor.
"""
from __future__ import annotations

import operator
from typing import Any

import torch
from torch.utils._pytree import tree_leaves, tree_map

from braze.errors import BrazeError
from braze.frontend.torch_ops import DTYPE_NAMES, Lowering, UnsupportedOpError, rules
from braze.ir.builder import GraphBuilder
from braze.ir.graph import Graph, Node
from braze.ir.ops import ShapeError

__all__ = ["UnsupportedOpError", "import_exported", "import_fx", "supports", "supported_ops",
           "supported_ops_markdown"]

aten = torch.ops.aten

# ops that read only the shape and dtype of their tensor inputs: known at import even on activations
SHAPE_ONLY_OPS = frozenset({aten.new_ones.default, aten.new_zeros.default, aten.new_full.default,
                            aten.new_empty.default, aten.ones_like.default, aten.zeros_like.default,
                            aten.full_like.default, aten.empty_like.default})

NESTED_GRAPH_OPS = frozenset({torch.ops.higher_order.wrap_with_set_grad_enabled})


def _foldable(target) -> bool:
    """Whether torch may run this op at import time: a pure ATen op (no randomness, no mutation)."""
    if target is operator.getitem:
        return True
    if not isinstance(target, torch._ops.OpOverload):
        return False
    return torch.Tag.nondeterministic_seeded not in target.tags and not target._schema.is_mutable


class _FxImporter(Lowering):
    """Runs an fx graph's nodes: folds what is known, applies the rules to the rest."""

    def __init__(self, builder: GraphBuilder):
        super().__init__(builder)
        self.rules = rules(self)
        self.names: dict[int, tuple[torch.Tensor, str]] = {}  # id(constant) -> (it, a name for it)

    def known(self, value, name: str):
        for t in tree_leaves(value):
            if isinstance(t, torch.Tensor):
                self.names.setdefault(id(t), (t, name))
        return value

    def as_node(self, value):
        if not isinstance(value, torch.Tensor):
            return value
        _, name = self.names.get(id(value), (value, "constant"))
        return self.lift(value, name)

    def run(self, graph: torch.fx.Graph, env: dict[str, Any]) -> list:
        """Values of the graph's outputs, given env (placeholder name -> value) for its inputs."""
        for node in graph.nodes:
            if node.op == "placeholder":
                if node.name not in env:
                    raise UnsupportedOpError(f"input {node.name} of a nested graph has no value")
            elif node.op == "get_attr":
                value = graph.owning_module
                for part in node.target.split("."):
                    value = getattr(value, part)
                env[node.name] = self.known(value.cpu() if isinstance(value, torch.Tensor) else value, node.target)
            elif node.op == "call_function":
                args = torch.fx.node.map_arg(node.args, lambda n: env[n.name])
                kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: env[n.name])
                env[node.name] = self.call(node, args, kwargs)
            elif node.op == "output":
                results = node.args[0] if isinstance(node.args[0], (tuple, list)) else (node.args[0],)
                return [env[r.name] if isinstance(r, torch.fx.Node) else r for r in results]
            else:
                raise UnsupportedOpError(f"fx node {node.name} ({node.op}) has no braze rule")
        return []

    def call(self, node: torch.fx.Node, args, kwargs):
        leaves = tree_leaves((args, kwargs))
        if not any(isinstance(x, Node) for x in leaves) and _foldable(node.target):
            args, kwargs = tree_map(_cpu_device, (args, kwargs))  # constants live on the CPU (graph weights do)
            try:
                return self.known(node.target(*args, **kwargs), node.name)  # a constant: torch computes it
            except Exception as e:  # noqa: BLE001  (the op's own error, said in one line)
                raise UnsupportedOpError(f"{node.target} (node {node.name}) on constants failed: "
                                         f"{type(e).__name__}: {str(e).strip()[:200]}") from e
        if node.target in SHAPE_ONLY_OPS:  # stand-ins of the same shape and dtype
            stand_in = lambda x: torch.empty(x.shape, dtype=_torch_dtype(x)) if isinstance(x, Node) else x  # noqa: E731
            return self.known(node.target(*tree_map(stand_in, args), **tree_map(stand_in, kwargs)), node.name)
        rule = self.rules.get(node.target)
        if rule is None:
            raise UnsupportedOpError(f"{node.target} (node {node.name}) has no braze rule; supported: "
                                     f"{', '.join(supported_ops())}")
        if node.target in NESTED_GRAPH_OPS:  # the body sees its inputs as they are (constants fold in it)
            return rule(*args, **kwargs)
        try:
            return rule(*tree_map(self.as_node, args), **tree_map(self.as_node, kwargs))
        except BrazeError:
            raise
        except Exception as e:  # noqa: BLE001  (a shape or an argument the rule does not take: one line)
            detail = str(e) if isinstance(e, ShapeError) else f"{type(e).__name__}: {str(e).strip()[:200]}"
            raise UnsupportedOpError(f"{node.target} (node {node.name}) in a form braze does not take: {detail}") from e

    def inline(self, module: torch.fx.GraphModule, args):
        placeholders = [n.name for n in module.graph.nodes if n.op == "placeholder"]
        return tuple(self.run(module.graph, dict(zip(placeholders, args))))


def _cpu_device(value):
    return torch.device("cpu") if isinstance(value, torch.device) else value


def _torch_dtype(x: Node) -> torch.dtype:
    return next(t for t, name in DTYPE_NAMES.items() if name == x.dtype)


def import_exported(ep: "torch.export.ExportedProgram", name: str = "exported") -> Graph:
    """Graph IR for an exported program: parameters become weights, buffers and constants are
    folded (and become weights only where run-time values use them)."""
    sig = ep.graph_signature
    state = {**ep.state_dict, **getattr(ep, "constants", {})}
    weights = {node: (target, state[target]) for node, target in sig.inputs_to_parameters.items()}
    constants = {node: (target, state[target]) for node, target in
                 {**sig.inputs_to_buffers, **getattr(sig, "inputs_to_lifted_tensor_constants", {})}.items()}
    return import_fx(ep.graph, weights, name, constants)


def import_fx(graph: torch.fx.Graph, weights: dict[str, tuple[str, torch.Tensor]], name: str,
              constants: dict[str, tuple[str, torch.Tensor]] | None = None) -> Graph:
    """Graph IR for an ATen fx graph. weights and constants: placeholder name -> (name, tensor);
    other placeholders are inputs (static shapes from node.meta["val"]); outputs are out0, out1, ..."""
    b = GraphBuilder(name=name)
    importer = _FxImporter(b)
    env: dict[str, Any] = {}
    for node in graph.nodes:
        if node.op != "placeholder":
            continue
        if node.name in weights:
            weight_name, tensor = weights[node.name]
            env[node.name] = b.weight(weight_name, tensor.detach().cpu().contiguous())  # the executable places it
        elif constants and node.name in constants:
            constant_name, tensor = constants[node.name]
            env[node.name] = importer.known(tensor.detach().cpu(), constant_name)
        else:
            env[node.name] = _input(b, node)
    outputs = {}
    for i, value in enumerate(importer.run(graph, env)):
        value = importer.as_node(value)
        if not isinstance(value, Node):
            raise UnsupportedOpError(f"output {i} is {type(value).__name__}; braze returns tensors")
        outputs[f"out{i}"] = value
    return b.build(outputs)


def _input(b: GraphBuilder, node: torch.fx.Node) -> Node:
    meta = node.meta.get("val")
    if not isinstance(meta, torch.Tensor) or any(not isinstance(d, int) for d in meta.shape):
        raise UnsupportedOpError(f"input {node.name} is not a tensor of static shape: export with static shapes")
    if meta.dtype not in DTYPE_NAMES:
        raise UnsupportedOpError(f"input {node.name} has dtype {meta.dtype}; braze takes "
                                 f"{', '.join(DTYPE_NAMES.values())}")
    return b.input(node.name, tuple(meta.shape), DTYPE_NAMES[meta.dtype])


# -- what the frontend takes (the torch.compile backend's partitioner asks node by node) -------

_TARGETS: frozenset = frozenset()


def _rule_targets() -> frozenset:
    global _TARGETS
    if not _TARGETS:
        _TARGETS = frozenset(rules(Lowering(GraphBuilder())))
    return _TARGETS


def supports(node: torch.fx.Node) -> bool:
    """Whether import_fx takes this call: it has a rule, or it is computed at import time (its
    inputs are all known then). Shapes may still make a rule refuse."""
    return node.op == "call_function" and (node.target in _rule_targets() or node.target in SHAPE_ONLY_OPS
                                           or _known_at_import(node))


def _known_at_import(node: torch.fx.Node) -> bool:
    if "braze_known" not in node.meta:  # once per graph, in node order (inputs come first)
        for n in node.graph.nodes:
            n.meta["braze_known"] = n.op == "call_function" and _foldable(n.target) and \
                all(i.meta.get("braze_known", False) for i in n.all_input_nodes)
    return node.meta["braze_known"]


def supported_ops() -> list[str]:
    """Every ATen overload the frontend has a rule for (the generated docs table)."""
    return sorted(str(op) for op in _rule_targets() if op is not operator.getitem)


def supported_ops_markdown() -> str:
    """docs/torch-ops.md: `python -m braze.frontend.torch_export > docs/torch-ops.md`."""
    lines = ["# ATen ops the torch.export frontend takes", "",
             "Generated by `python -m braze.frontend.torch_export > docs/torch-ops.md` from the rules in",
             "`braze/frontend/torch_ops.py`; an op not listed is an error that names it.", "",
             "Besides these, any pure ATen op whose tensor inputs are all known at import time (buffers,",
             "constants, `arange`/`full`/`ones` and what is computed from them only: masks, positions,",
             "rotary tables) is computed by torch while importing and becomes a weight; so are",
             f"{', '.join(f'`{op}`' for op in sorted(str(o) for o in SHAPE_ONLY_OPS))}",
             "on any input (they read only its shape and dtype).", "",
             "| ATen op |", "|---|"]
    return "\n".join(lines + [f"| `{op}` |" for op in supported_ops()]) + "\n"


if __name__ == "__main__":
    print(supported_ops_markdown(), end="")
