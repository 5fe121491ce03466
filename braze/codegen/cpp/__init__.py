"""The C++/OpenMP backend: a Kernel IR Program becomes one readable C++ translation unit.

Design:
  * emit.py      Program -> source. One `static void kN_<name>(void** buffers, const int64_t*
                 symbols)` per kernel (a comment lists the graph ops it fuses) and
                 `extern "C" void braze_run(void** buffers, const int64_t* symbols)` calling them
                 in order. Sizes that are symbols are read from `symbols` (sorted(program.symbols)
                 order) at run time, so one compiled program serves every token count.
                 Views are addressed as base + offset + sum(idx * stride) with compile-time
                 strides; expression DAGs become `const float` locals, common subexpressions once.
  * kernels.py   loop nests per kind: pointwise (parallel collapsed outer dims, simd last dim),
                 reduction (parallel rows, simd reductions then the output row), gather, rope,
                 kv_store, attention (per token x head, chunked online softmax, GQA).
  * matmul.py    prologue rows (with their row reductions) computed once into a scratch block,
                 4x4 register micro-tiles streaming B [N, K] once per row block, epilogue fused.
  * prelude.py   dtype conversions (bf16 = top half of f32, RNE on store; f16 = _Float16).
  * compiler.py  g++ -O3 -march=native -fopenmp, sha256-keyed on-disk cache, ctypes loading.

All arithmetic is float32; no fast-math (only -ffp-contract=fast, -fno-math-errno), so results
match torch at fp32 tolerances.

    from braze.codegen.cpp import compile_program
    cp = compile_program(program)
    cp.run([t.data_ptr() for t in tensors], [T, N])   # tensors in program.buffers order
"""
from braze.codegen.cpp.compiler import CompiledProgram, compile_program, compile_source
from braze.codegen.cpp.emit import emit_program

__all__ = ["emit_program", "compile_program", "compile_source", "CompiledProgram"]
