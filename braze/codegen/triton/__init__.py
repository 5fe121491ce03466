"""The Triton backend: the same Kernel IR the C++ backend compiles, emitted as Triton kernels.

    from braze.codegen.triton import compile_program
    tp = compile_program(program)          # cached by content hash under ~/.cache/braze/triton
    tp.run(flat_tensors, {"T": 5, "N": 1})  # flat_tensors in program.buffers order, on the GPU

On a machine without a GPU, TRITON_INTERPRET=1 runs the same kernels on the CPU (tests do this;
the interpreter's bfloat16 arithmetic is unreliable, so CPU tests use float32/float16).
"""
from braze.codegen.triton.module import EmitContext, EmittedKernel, TritonProgram, compile_program, emit_module

__all__ = ["compile_program", "emit_module", "TritonProgram", "EmitContext", "EmittedKernel"]
