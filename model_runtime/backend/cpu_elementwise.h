// cpu_elementwise.h: per-ISA rows of the cpu backend's elementwise ops.
#pragma once

#include <cstdint>

namespace vlm {

// y[c] = silu(gate[c]) * up[c] = gate / (1 + e^-gate) * up, c < n.
void silu_mul_row_avx512(const float *gate, const float *up, float *y, int64_t n);

}  // namespace vlm
