// cpu_elementwise_avx512.cpp: AVX-512 rows for the cpu backend's
// transcendental elementwise ops (silu_mul); everything else vectorises
// fine from plain C++.
#include "backend/cpu_elementwise.h"

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "backend/cpu_vec_avx512.h"

namespace vlm {

void silu_mul_row_avx512(const float *gate, const float *up, float *y, int64_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t c = 0;
    for (; c < n; c += 16) {
        __mmask16 m = n - c >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - c)) - 1u);
        __m512 g = _mm512_maskz_loadu_ps(m, gate + c);
        __m512 u = _mm512_maskz_loadu_ps(m, up + c);
        __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
        __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(y + c, m, _mm512_mul_ps(s, u));
    }
}

}  // namespace vlm
