"""Program -> one C++ translation unit (see braze/codegen/cpp/__init__.py for the design).

This module holds what every kernel kind shares: sizes (ints or runtime symbols), view addressing
(base + offset + sum(idx_i * stride_i), stride-0 and size-1 dims dropped), buffer pointers with
their element types, and expression DAG emission (one `const float` local per distinct
subexpression, found by structural hashing). kernels.py emits the loop nests per kind.
"""
from __future__ import annotations

import math
import re

from braze.errors import CompilationError
from braze.ir.kernel import Expr, Kernel, Program, View
from braze.codegen.cpp.prelude import C_TYPE, PRELUDE

PAR_MIN_WORK = 1 << 15  # elements (or MACs / 8) below which a kernel stays single-threaded


def c_ident(name: str) -> str:
    s = re.sub(r"\W", "_", name)
    return s if s and not s[0].isdigit() else "_" + s


def symbol_c_names(program: Program) -> dict[str, str]:
    """Runtime symbols keep their names in C when they cannot clash with generated locals."""
    out = {}
    for i, s in enumerate(sorted(program.symbols)):
        ok = s.isidentifier() and s[0].isupper() and s.isascii()
        out[s] = s if ok else f"SYM{i}_{c_ident(s)}"
    return out


def fmt_float(v) -> str:
    v = float(v)
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "(-INFINITY)"
    r = repr(v)
    if "e" not in r and "." not in r:
        r += ".0"
    return f"{r}f" if v >= 0 else f"({r}f)"


def paren(s: str) -> str:
    return s if re.fullmatch(r"[\w.]+", s) else f"({s})"


def mul(a: str, b) -> str:
    """a * b with trivial factors folded (b is an int stride or a C expression)."""
    if b == 1 or b == "1":
        return a
    if a == "1":
        return str(b)
    if a == "0" or b == 0:
        return "0"
    return f"{paren(a)} * {paren(str(b))}"


class KernelCtx:
    """Per-kernel emission state: the program, pointer names, a counter for unique locals."""

    def __init__(self, program: Program, kernel: Kernel, sym: dict[str, str]):
        self.program, self.kernel, self.sym = program, kernel, sym
        self.buf_index = {b.name: i for i, b in enumerate(program.buffers)}
        self.counter = 0

    # sizes ------------------------------------------------------------------------------------
    def dim(self, d) -> str:
        if isinstance(d, str):
            if d not in self.sym:
                raise CompilationError(f"kernel {self.kernel.name}: shape uses unknown symbol {d!r}")
            return self.sym[d]
        return str(int(d))

    def prod(self, dims) -> str:
        ints = math.prod(int(d) for d in dims if not isinstance(d, str))
        syms = [self.dim(d) for d in dims if isinstance(d, str)]
        parts = ([str(ints)] if ints != 1 or not syms else []) + syms
        return " * ".join(parts) if len(parts) > 1 else parts[0]

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}{self.counter}"

    # buffers and views ------------------------------------------------------------------------
    def dtype(self, view: View) -> str:
        try:
            return self.program.buffer(view.buffer).dtype
        except KeyError:
            raise CompilationError(f"kernel {self.kernel.name}: view of unknown buffer {view.buffer!r}") from None

    def buffers_used(self) -> list[str]:
        """The kernel's buffers, output first: they become the parameters p0, p1, ..."""
        k = self.kernel
        return list(dict.fromkeys(v.buffer for v in (k.output,) + tuple(k.operands)))

    def ptr(self, view: View) -> str:
        return f"p{self.buffers_used().index(view.buffer)}"

    def params(self) -> list[tuple[str, str, int]]:
        """(C parameter type, C argument expression, buffer index) per parameter."""
        out = []
        for j, name in enumerate(self.buffers_used()):
            i = self.buf_index[name]
            ct = C_TYPE[self.program.buffers[i].dtype]
            const = "" if j == 0 else "const "
            out.append((f"{const}{ct}*", f"({const}{ct}*)buffers[{i}]", i))
        return out

    def addr(self, view: View, idx: list[str]) -> str:
        """Element index of `view` at `idx` (right-aligned: leading dom axes broadcast)."""
        if len(idx) < len(view.shape):
            raise CompilationError(f"kernel {self.kernel.name}: view {view} has more dims than its domain")
        idx = idx[len(idx) - len(view.shape):]
        terms = [mul(i, s) for i, d, s in zip(idx, view.shape, view.strides) if d != 1 and s != 0]
        if view.offset:
            terms.insert(0, str(view.offset))
        return " + ".join(terms) if terms else "0"

    def load(self, view: View, idx: list[str]) -> str:
        ref = f"{self.ptr(view)}[{self.addr(view, idx)}]"
        return ref if self.dtype(view) == "float32" else f"to_f({ref})"

    def store(self, view: View, idx: list[str], value: str) -> str:
        dt = self.dtype(view)
        conv = {"float32": value, "bfloat16": f"bf16_store({value})", "float16": f"(f16_t)({value})",
                "int32": f"(int32_t)({value})", "int64": f"(int64_t)({value})", "bool": f"({value}) != 0.0f"}[dt]
        return f"{self.ptr(view)}[{self.addr(view, idx)}] = {conv};"

    def index_load(self, view: View, idx: list[str]) -> str:
        """An int64 index value (token id, position, slot) read through a view."""
        ref = f"{self.ptr(view)}[{self.addr(view, idx)}]"
        return ref if self.dtype(view) in ("int64", "int32", "bool") else f"(int64_t)({ref})"

    def decompose(self, flat: str, dims, names: list[str]) -> list[str]:
        """Lines splitting row-major flat index `flat` over `dims` into `names`."""
        if not dims:
            return []
        if len(dims) == 1:
            return [f"const int64_t {names[0]} = {flat};"]
        rem = self.fresh("rem")
        lines = [f"int64_t {rem} = {flat};"]
        for n, d in reversed(list(zip(names[1:], dims[1:]))):
            lines.append(f"const int64_t {n} = {rem} % {paren(self.dim(d))}; {rem} /= {paren(self.dim(d))};")
        lines.append(f"const int64_t {names[0]} = {rem};")
        return lines

    def par_if(self, work: str) -> str:
        return f"if({work} >= {PAR_MIN_WORK})"

    # expressions ------------------------------------------------------------------------------
    def expr(self, e: Expr, load, acc: str | None = None, rowred=None) -> tuple[list[str], str]:
        """Emit `e` as locals; load(i) is the C value of operand i here. Returns (lines, value)."""
        names: dict[tuple, str] = {}
        memo: dict[int, tuple] = {}
        lines: list[str] = []

        def key(x: Expr) -> tuple:
            if id(x) not in memo:
                memo[id(x)] = (x.op, repr(x.value), tuple(key(a) for a in x.args))
            return memo[id(x)]

        for node in e.walk():
            k = key(node)
            if k in names:
                continue
            a = [names[key(x)] for x in node.args]
            code = self._op(node, a, load, acc, rowred)
            if node.op == "const":
                names[k] = code
                continue
            v = self.fresh("v")
            lines.append(f"const float {v} = {code};")
            names[k] = v
        return lines, names[key(e)]

    def _op(self, node: Expr, a: list[str], load, acc, rowred) -> str:
        op = node.op
        unary = {"neg": "-{0}", "exp": "expf({0})", "log": "logf({0})", "sqrt": "sqrtf({0})",
                 "rsqrt": "1.0f / sqrtf({0})", "reciprocal": "1.0f / {0}", "tanh": "tanhf({0})",
                 "sigmoid": "bz_sigmoid({0})", "silu": "bz_silu({0})", "relu": "bz_relu({0})",
                 "gelu": "bz_gelu({0})", "cos": "cosf({0})", "sin": "sinf({0})", "abs": "fabsf({0})",
                 "square": "{0} * {0}", "logical_not": "{0} == 0.0f ? 1.0f : 0.0f"}
        binary = {"add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}",
                  "maximum": "bz_max({0}, {1})", "minimum": "bz_min({0}, {1})", "pow": "powf({0}, {1})",
                  "eq": "{0} == {1} ? 1.0f : 0.0f", "ne": "{0} != {1} ? 1.0f : 0.0f",
                  "lt": "{0} < {1} ? 1.0f : 0.0f", "le": "{0} <= {1} ? 1.0f : 0.0f",
                  "gt": "{0} > {1} ? 1.0f : 0.0f", "ge": "{0} >= {1} ? 1.0f : 0.0f",
                  "logical_and": "({0} != 0.0f && {1} != 0.0f) ? 1.0f : 0.0f",
                  "logical_or": "({0} != 0.0f || {1} != 0.0f) ? 1.0f : 0.0f"}
        if op == "load":
            return load(node.value)
        if op == "const":
            return fmt_float(node.value)
        if op == "acc":
            if acc is None:
                raise CompilationError(f"kernel {self.kernel.name}: `acc` outside a matmul epilogue")
            return acc
        if op == "rowred":
            if rowred is None:
                raise CompilationError(f"kernel {self.kernel.name}: `rowred` where no reduction is in scope")
            return rowred(node.value)
        if op == "cast":
            return {"float32": "{0}", "bfloat16": "round_bf16({0})", "float16": "round_f16({0})",
                    "int32": "(float)(int32_t){0}", "int64": "(float)(int64_t){0}",
                    "bool": "({0} != 0.0f ? 1.0f : 0.0f)"}[node.value].format(*a)
        if op in unary and len(a) == 1:
            return unary[op].format(*a)
        if op in binary and len(a) == 2:
            return binary[op].format(*a)
        if op == "where" and len(a) == 3:
            return "{0} != 0.0f ? {1} : {2}".format(*a)
        raise CompilationError(f"kernel {self.kernel.name}: cannot emit expression op {op!r} with {len(a)} args")


def indent(lines: list[str], n: int = 1) -> list[str]:
    pad = "  " * n
    return [pad + x if x else x for x in lines]


def emit_program(program: Program) -> str:
    """The whole translation unit: prelude, one static function per kernel, and braze_run."""
    from braze.codegen.cpp.kernels import EMITTERS, support_code

    sym = symbol_c_names(program)
    sym_decls = [f"const int64_t {sym[s]} = symbols[{i}]; (void){sym[s]};"
                 for i, s in enumerate(sorted(program.symbols))]
    impls: dict[str, str] = {}  # body text -> implementation name (layers share one function)
    funcs, calls = [], []
    for n, kernel in enumerate(program.kernels):
        if kernel.kind not in EMITTERS:
            raise CompilationError(f"kernel {kernel.name}: the C++ backend has no emitter for kind {kernel.kind!r}")
        fname = f"k{n}_{c_ident(kernel.name)}"
        ctx = KernelCtx(program, kernel, sym)
        params = ctx.params()
        body = EMITTERS[kernel.kind](ctx)
        signature = ", ".join(f"{t} p{j}" for j, (t, _, _) in enumerate(params)) + ", const int64_t* symbols"
        text = f"({signature}) {{\n" + "\n".join(indent(sym_decls + body)) + "\n}"
        if text not in impls:
            impls[text] = f"impl_{fname}"
            funcs.append(f"// {kernel.kind} body, first used by {kernel.name}\nstatic void impl_{fname}{text}\n")
        args = [a for _, a, _ in params] + ["symbols"]
        names = ", ".join(f"p{j} = {program.buffers[i].name}" for j, (_, _, i) in enumerate(params))
        funcs.append("\n".join([
            f"// {kernel.name} ({kernel.kind}); fuses: {', '.join(kernel.sources) or '-'}; {names}",
            f"static void {fname}(void** buffers, const int64_t* symbols) {{",
            f"  {impls[text]}({', '.join(args)});", "}", ""]))
        calls.append(f"  {fname}(buffers, symbols);")
    header = [f"// braze: generated C++ for program {program.name!r}",
              "// buffers: " + ", ".join(f"[{i}] {b.name} {b.dtype} {list(b.shape)} ({b.kind})"
                                         for i, b in enumerate(program.buffers)),
              "// symbols: " + (", ".join(sorted(program.symbols)) or "none")]
    entry = ['extern "C" void braze_run(void** buffers, const int64_t* symbols) {',
             *indent(sym_decls), *calls, "}", ""]
    return "\n".join(header + [PRELUDE, support_code(program), ""] + funcs + entry)
