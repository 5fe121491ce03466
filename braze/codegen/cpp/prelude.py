"""The fixed part of every generated translation unit: dtype conversions and the matmul micro-tiles.

Buffers hold float32, bfloat16 (stored as uint16_t: the upper half of a float32), float16
(`_Float16`), int32, int64 or bool (one byte, as torch stores it). Everything computes in float; these helpers convert on load and
round on store (bf16 with round-to-nearest-even, NaN kept quiet).
"""
from __future__ import annotations

C_TYPE = {"float32": "float", "bfloat16": "bf16_t", "float16": "f16_t", "int32": "int32_t", "int64": "int64_t",
          "bool": "bool", "int8": "int8_t", "uint8": "uint8_t", "float8_e4m3fn": "f8e4m3_t"}  # f8: matmul_quant.py
TAG = {"float32": "f32", "bfloat16": "bf16", "float16": "f16", "int32": "i32", "int64": "i64", "bool": "b8",
       "int8": "i8", "uint8": "u8", "float8_e4m3fn": "f8"}

PRELUDE = r"""
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <cmath>
#include <algorithm>

typedef uint16_t bf16_t;
typedef _Float16 f16_t;

static inline float bf16_load(bf16_t h) {
  uint32_t u = (uint32_t)h << 16; float f; std::memcpy(&f, &u, 4); return f;
}
static inline bf16_t bf16_store(float f) {
  uint32_t u; std::memcpy(&u, &f, 4);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return (bf16_t)(((u & 0x7fffffffu) > 0x7f800000u) ? ((u >> 16) | 0x40u) : rounded);
}
static inline float to_f(float x) { return x; }
static inline float to_f(bf16_t x) { return bf16_load(x); }
static inline float to_f(f16_t x) { return (float)x; }
static inline float to_f(int32_t x) { return (float)x; }
static inline float to_f(int64_t x) { return (float)x; }
static inline float to_f(bool x) { return x ? 1.0f : 0.0f; }
static inline float round_bf16(float x) { return bf16_load(bf16_store(x)); }
static inline float round_f16(float x) { return (float)(f16_t)x; }
static inline float bz_max(float a, float b) { return (a != a || a > b) ? a : b; }  // NaN-propagating
static inline float bz_min(float a, float b) { return (a != a || a < b) ? a : b; }
static inline float bz_relu(float x) { return x < 0.0f ? 0.0f : x; }
static inline float bz_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline float bz_silu(float x) { return x / (1.0f + expf(-x)); }
// Per-thread scratch (matmul prologue rows), grown on demand and reused across calls.
static float* bz_scratch(size_t n) {
  static thread_local float* p = nullptr;
  static thread_local size_t cap = 0;
  if (n > cap) { std::free(p); p = (float*)std::aligned_alloc(64, (n * 4 + 63) / 64 * 64); cap = n; }
  return p;
}
static inline float bz_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
"""


def tile_function(mr: int, nr: int, btype: str) -> str:
    """C = A[mr, K] (float, row stride K) . B[nr, K]^T (btype, row stride ldb), written C[i*ldc+j].

    One pass over K: every B row loaded once serves all `mr` A rows; the `mr*nr` partial dots are
    vector accumulators of one simd reduction (the reassociation OpenMP simd reductions allow).
    """
    name = f"mm_tile_{mr}x{nr}_{TAG[btype]}"
    ct = C_TYPE[btype]
    accs = [f"c{i}{j}" for i in range(mr) for j in range(nr)]
    lines = [f"static inline void {name}(const float* A, int64_t K, const {ct}* B, int64_t ldb, float* C, int64_t ldc) {{"]
    lines += [f"  const float* a{i} = A + {i} * K;" for i in range(mr)]
    lines += [f"  const {ct}* w{j} = B + {j} * ldb;" for j in range(nr)]
    lines.append("  float " + ", ".join(f"{c} = 0.0f" for c in accs) + ";")
    lines.append(f"  #pragma omp simd reduction(+:{','.join(accs)})")
    lines.append("  for (int64_t k = 0; k < K; ++k) {")
    lines += [f"    const float x{i} = a{i}[k];" for i in range(mr)]
    lines += [f"    const float y{j} = to_f(w{j}[k]);" for j in range(nr)]
    lines += [f"    c{i}{j} += x{i} * y{j};" for i in range(mr) for j in range(nr)]
    lines.append("  }")
    lines += [f"  C[{i} * ldc + {j}] = c{i}{j};" for i in range(mr) for j in range(nr)]
    lines.append("}")
    return "\n".join(lines)


def tile_functions(btype: str, nr_max: int) -> str:
    return "\n".join(tile_function(mr, nr, btype) for mr in range(1, 5) for nr in sorted({1, nr_max}))
