"""Quantized weights in the C++ matmul: B rows dequantized tile by tile, next to the dot products.

A matmul kernel with attrs `quant` (int8 | int4 | fp8, see braze/quant/formats.py) reads its weight
as packed rows plus per-group scales (and mins). The matmul loop (matmul.py) keeps its structure:
for each tile of NR output columns it first expands those NR rows into a per-thread float scratch
(`bz_dequant_*`: one pass over K, each packed byte read once), then runs the same float32
micro-tiles over them for every 4 rows of A in the block. Decode (one block of A rows) reads every
packed weight exactly once; prefill dequantizes each row once per block of 64 rows of A, a small
fraction of that block's 64 multiply-adds per weight.
"""
from __future__ import annotations

from braze.codegen.cpp.prelude import C_TYPE
from braze.errors import CompilationError

QUANT_SUPPORT = r"""
struct f8e4m3_t { uint8_t bits; };
static inline float to_f(int8_t x) { return (float)x; }
static inline float to_f(uint8_t x) { return (float)x; }
// float8 e4m3fn (sign, 4 exponent bits biased by 7, 3 mantissa bits; no infinities) -> float
struct BzFp8Table {
  float v[256];
  BzFp8Table() {
    for (int b = 0; b < 256; ++b) {
      const int e = (b >> 3) & 15, m = b & 7;
      float x = e == 0 ? std::ldexp((float)m, -9) : std::ldexp(1.0f + m / 8.0f, e - 7);
      if (e == 15 && m == 7) x = NAN;
      v[b] = (b & 128) ? -x : x;
    }
  }
};
static const BzFp8Table bz_fp8_table;
static inline float to_f(f8e4m3_t x) { return bz_fp8_table.v[x.bits]; }
// Per-thread scratch for dequantized weight rows (the prologue's scratch is bz_scratch).
static float* bz_scratch_b(size_t n) {
  static thread_local float* p = nullptr;
  static thread_local size_t cap = 0;
  if (n > cap) { std::free(p); p = (float*)std::aligned_alloc(64, (n * 4 + 63) / 64 * 64); cap = n; }
  return p;
}
// w[0, K) = q * s (int8, fp8): one scale per G weights (the last group may be shorter)
template <typename Q, typename S>
static inline void bz_dequant_scaled(const Q* q, const S* s, int64_t K, int64_t G, float* w) {
  for (int64_t g = 0; g * G < K; ++g) {
    const float sc = to_f(s[g]);
    const Q* qg = q + g * G;
    float* wg = w + g * G;
    const int64_t len = std::min<int64_t>(G, K - g * G);
    #pragma omp simd
    for (int64_t i = 0; i < len; ++i) wg[i] = to_f(qg[i]) * sc;
  }
}
// int4: byte i of a row holds weights 2i (low nibble) and 2i+1; w = q * s + m, or (q - 8) * s
template <typename S>
static inline void bz_dequant_int4(const uint8_t* p, const S* s, const S* m, int64_t K, int64_t G, float* w) {
  for (int64_t g = 0; g * G < K; ++g) {
    const float sc = to_f(s[g]);
    const float mn = m ? to_f(m[g]) : -8.0f * sc;
    const uint8_t* pg = p + g * (G / 2);
    float* wg = w + g * G;
    const int64_t len = std::min<int64_t>(G, K - g * G) / 2;
    #pragma omp simd
    for (int64_t i = 0; i < len; ++i) {
      wg[2 * i] = (float)(pg[i] & 15) * sc + mn;
      wg[2 * i + 1] = (float)(pg[i] >> 4) * sc + mn;
    }
  }
}
"""


def quant_support(program) -> str:
    """The dequantization helpers, when some matmul has quantized weights (matmul_support adds
    the float32 micro-tiles that read the dequantized rows)."""
    if not any(k.kind == "matmul" and k.attr("quant") for k in program.kernels):
        return ""
    return QUANT_SUPPORT


def dequant_tile(ctx, nr_max: int) -> list[str]:
    """Lines that expand rows n0 .. n0+nr of a quantized kernel's weight into the float scratch
    `bq` ([nr, kdim], read by the float32 micro-tiles)."""
    k = ctx.kernel
    fmt, group = k.attr("quant"), int(k.attr("group"))
    packed, scales = k.operands[int(k.attr("weight"))], k.operands[int(k.attr("scales"))]
    mins = k.operands[int(k.attr("mins"))] if k.attr("mins", -1) >= 0 else None
    for v in (packed, scales, mins):
        if v is not None and (len(v.shape) != 2 or v.strides[1] != 1):
            raise CompilationError(f"kernel {k.name}: quantized weight operands must be row-major [N, *], got {v}")

    def row(v, n: str) -> str:
        off = f"{v.offset} + " if v.offset else ""
        return f"{ctx.ptr(v)} + {off}({n}) * {v.strides[0]}"
    n = "n0 + j"
    if fmt == "int4":
        m = row(mins, n) if mins is not None else f"(const {C_TYPE[ctx.dtype(scales)]}*)nullptr"
        call = f"bz_dequant_int4({row(packed, n)}, {row(scales, n)}, {m}, kdim, {group}, bq + j * kdim);"
    elif fmt in ("int8", "fp8"):
        call = f"bz_dequant_scaled({row(packed, n)}, {row(scales, n)}, kdim, {group}, bq + j * kdim);"
    else:
        raise CompilationError(f"kernel {k.name}: the C++ backend has no dequantization for format {fmt!r}")
    lines = [f"float* bq = bz_scratch_b((size_t)({nr_max} * kdim));",
             "for (int64_t j = 0; j < nr; ++j) " + call]
    return lines
