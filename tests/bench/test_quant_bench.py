"""The GEMV chain that quant_bench times a quantized matmul in: every copy its own kernel and its
own weights (nothing merged), and the bytes per copy that its roofline counts."""
import pytest

from braze.bench.quant_bench import _gemv_program


@pytest.mark.parametrize("method,bytes_per_copy", [
    (None, 64 * 256 * 2),                              # bf16
    ("int8", 64 * 256 + 64 * 4),                       # a byte a weight, one float32 scale a row
    ("int4-rtn-g128", 64 * 256 // 2 + 64 * 2 * 2 * 2),  # a nibble a weight, bf16 scale and min a group
])
def test_gemv_chain_has_one_kernel_and_one_weight_per_copy(method, bytes_per_copy):
    program, weight_bytes = _gemv_program(64, 256, method, copies=5, device="cpu")
    matmuls = [k for k in program.kernels if k.kind == "matmul"]
    assert len(matmuls) == 5
    assert len({k.operands[0].buffer for k in matmuls}) == 5  # distinct inputs
    assert weight_bytes == bytes_per_copy
