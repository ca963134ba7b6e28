// cpu_matmul_avx2.cpp: AVX2+FMA "rows" matmul kernel (see cpu_matmul.h):
// weights (f32, bf16 or f16) widened to f32 in registers, 8 lanes, f32
// activations. The k % 8 tail runs in scalar code. No bf16 GEMM here.
#include "backend/cpu_matmul.h"

// The register tiles rely on their small fixed loops being fully unrolled;
// without that GCC 12 (-O3) keeps the accumulators in memory and stores them
// on every k step.
#define VLM_UNROLL _Pragma("GCC unroll 16")

#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace vlm {
namespace {

template <DType D>
inline __m256 load_w8(const void *p, int64_t c)
{
    if constexpr (D == DType::F32) {
        return _mm256_loadu_ps(static_cast<const float *>(p) + c);
    } else if constexpr (D == DType::BF16) {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(static_cast<const uint16_t *>(p) + c));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(static_cast<const uint16_t *>(p) + c));
        return _mm256_cvtph_ps(h);
    }
}

template <DType D>
inline float load_w1(const void *p, int64_t c)
{
    if constexpr (D == DType::F32) {
        return static_cast<const float *>(p)[c];
    } else if constexpr (D == DType::BF16) {
        uint32_t bits = uint32_t(static_cast<const uint16_t *>(p)[c]) << 16;
        float f;
        std::memcpy(&f, &bits, 4);
        return f;
    } else {
        return _cvtsh_ss(static_cast<const uint16_t *>(p)[c]);
    }
}

inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline const void *w_row(const MatmulJob &j, int64_t o)
{
    size_t esz = j.w_dtype == DType::F32 ? 4 : 2;
    return static_cast<const char *>(j.w) + size_t(o) * size_t(j.w_stride) * esz;
}

template <DType D, int R, int N>
void rows_tile(const MatmulJob &j, int64_t t0, int64_t o0)
{
    const void *w[R];
    const float *x[N];
    VLM_UNROLL for (int r = 0; r < R; r++) w[r] = w_row(j, o0 + r);
    VLM_UNROLL for (int t = 0; t < N; t++) x[t] = j.x + size_t(t0 + t) * size_t(j.x_stride);
    __m256 acc[R][N];
    VLM_UNROLL for (int r = 0; r < R; r++)
        VLM_UNROLL for (int t = 0; t < N; t++) acc[r][t] = _mm256_setzero_ps();
    const int64_t k = j.k;
    int64_t c = 0;
    for (; c + 8 <= k; c += 8) {
        __m256 xv[N];
        VLM_UNROLL for (int t = 0; t < N; t++) xv[t] = _mm256_loadu_ps(x[t] + c);
        VLM_UNROLL for (int r = 0; r < R; r++) {
            __m256 wv = load_w8<D>(w[r], c);
            VLM_UNROLL for (int t = 0; t < N; t++) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    VLM_UNROLL for (int t = 0; t < N; t++) {
        float *y = j.y + size_t(t0 + t) * size_t(j.y_stride) + o0;
        VLM_UNROLL for (int r = 0; r < R; r++) {
            float s = hsum8(acc[r][t]);
            for (int64_t cc = c; cc < k; cc++) s += load_w1<D>(w[r], cc) * x[t][cc];
            y[r] = s;
        }
    }
}

template <DType D, int R>
void rows_tokens(const MatmulJob &j, int64_t t0, int64_t t1, int64_t o)
{
    int64_t t = t0;
    for (; t + 3 <= t1; t += 3) rows_tile<D, R, 3>(j, t, o);
    switch (t1 - t) {
    case 2: rows_tile<D, R, 2>(j, t, o); break;
    case 1: rows_tile<D, R, 1>(j, t, o); break;
    default: break;
    }
}

template <DType D>
void rows_impl(const MatmulJob &j, int64_t t0, int64_t t1, int64_t o0, int64_t o1)
{
    for (int64_t tb = t0; tb < t1; tb += kSmallN) {
        int64_t te = std::min(t1, tb + kSmallN);
        int64_t o = o0;
        for (; o + 4 <= o1; o += 4) rows_tokens<D, 4>(j, tb, te, o);
        for (; o < o1; o++) rows_tokens<D, 1>(j, tb, te, o);
    }
}

}  // namespace

void matmul_rows_avx2(const MatmulJob &job, int64_t t0, int64_t t1, int64_t o0, int64_t o1)
{
    switch (job.w_dtype) {
    case DType::F32: rows_impl<DType::F32>(job, t0, t1, o0, o1); break;
    case DType::BF16: rows_impl<DType::BF16>(job, t0, t1, o0, o1); break;
    case DType::F16: rows_impl<DType::F16>(job, t0, t1, o0, o1); break;
    default: break;
    }
}

}  // namespace vlm
