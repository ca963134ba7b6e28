// cpu_matmul_quant_avx2.cpp: the AVX2 Q8/Q4 product (see cpu_matmul_quant.h
// for the arithmetic and why a token's result does not depend on n).
// Register tile: R weight rows x NT tokens accumulators of 8 float lanes,
// R * NT <= 8 so that the tile, the unpacked weight blocks and the token's
// quants fit AVX2's 16 registers (4 x 4 spilled): 4 x 1 for decode, 2 x 4
// for batches. A weight block is loaded (and, for Q4, unpacked) once per
// tile and used by all its tokens. The rows' f16 scales are widened once
// per row group. Tokens are taken in tiles of kQuantTokenTile so their
// rounded activations stay in L2 while a thread walks its rows.
#include "backend/cpu_matmul_quant.h"

#define VLM_UNROLL _Pragma("GCC unroll 16")

#include <immintrin.h>

#include <algorithm>
#include <vector>

namespace vlm {
namespace {

constexpr int64_t kQuantTokenTile = 64;

inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

template <bool Q4, int R, int NT>
void quant_tile(const uint8_t *w, size_t row_bytes, const float *sw, const QuantizedX &qx, int64_t t0,
                float *y, int64_t y_stride)
{
    const int64_t nb = qx.nb;
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256 acc[R][NT];
    VLM_UNROLL for (int r = 0; r < R; r++)
        VLM_UNROLL for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps();

    for (int64_t b = 0; b < nb; b++) {
        __m256i wv[R];
        VLM_UNROLL for (int r = 0; r < R; r++) {
            const uint8_t *p = w + size_t(r) * row_bytes;
            if constexpr (Q4) {
                __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p + b * 16));
                wv[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low4);
            } else {
                wv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + b * 32));
            }
        }
        VLM_UNROLL for (int t = 0; t < NT; t++) {
            const size_t blk = size_t(t0 + t) * size_t(nb) + size_t(b);
            const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(qx.q + blk * 32));
            const __m256 xs = _mm256_broadcast_ss(qx.scale + blk);
            __m256i xa, off;
            if constexpr (Q4) off = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(qx.offset + blk * 16));
            else xa = _mm256_sign_epi8(xq, xq);  // |x_q|: x_q is never -128
            VLM_UNROLL for (int r = 0; r < R; r++) {
                __m256i pairs;
                if constexpr (Q4) pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(wv[r], xq), off);
                else pairs = _mm256_maddubs_epi16(xa, _mm256_sign_epi8(wv[r], xq));
                const __m256 isum = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                const __m256 ws = _mm256_broadcast_ss(sw + size_t(r) * size_t(nb) + size_t(b));
                acc[r][t] = _mm256_fmadd_ps(isum, _mm256_mul_ps(ws, xs), acc[r][t]);
            }
        }
    }
    VLM_UNROLL for (int t = 0; t < NT; t++)
        VLM_UNROLL for (int r = 0; r < R; r++) y[size_t(t) * size_t(y_stride) + size_t(r)] = hsum8(acc[r][t]);
}

// All tokens [t0, t1) for R rows: NT = 4 tiles (R = 2) or, below 4 tokens,
// one tile of them all.
template <bool Q4, int R>
void tokens_for_rows(const uint8_t *w, size_t row_bytes, const float *sw, const QuantizedX &qx, int64_t t0,
                     int64_t t1, float *y, int64_t y_stride)
{
    int64_t t = t0;
    if constexpr (R <= 2)
        for (; t + 4 <= t1; t += 4)
            quant_tile<Q4, R, 4>(w, row_bytes, sw, qx, t, y + size_t(t) * size_t(y_stride), y_stride);
    for (; t < t1;) {
        float *yt = y + size_t(t) * size_t(y_stride);
        switch (std::min<int64_t>(t1 - t, 2)) {
        case 2: quant_tile<Q4, R, 2>(w, row_bytes, sw, qx, t, yt, y_stride); t += 2; break;
        default: quant_tile<Q4, R, 1>(w, row_bytes, sw, qx, t, yt, y_stride); t += 1; break;
        }
    }
}

// Rows [o, o + R) widened scales into `sw` (R x nb floats).
void widen_scales(const uint16_t *scales, int64_t o, int R, int64_t nb, float *sw)
{
    const uint16_t *src = scales + size_t(o) * size_t(nb);
    const size_t total = size_t(R) * size_t(nb);
    size_t i = 0;
    for (; i + 8 <= total; i += 8)
        _mm256_storeu_ps(sw + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(src + i))));
    for (; i < total; i++) sw[i] = _cvtsh_ss(src[i]);
}

template <bool Q4>
void matmul_quant(const MatmulJob &job, const uint16_t *scales, const QuantizedX &qx, int64_t t0, int64_t t1,
                  int64_t o0, int64_t o1)
{
    const size_t row_bytes = size_t(qx.nb) * (Q4 ? 16 : 32);
    const uint8_t *w = static_cast<const uint8_t *>(job.w);
    thread_local std::vector<float> sw;  // grows once per thread
    if (sw.size() < size_t(4 * qx.nb)) sw.resize(size_t(4 * qx.nb));
    const bool decode = t1 - t0 < 4;  // 4 rows x n tokens; else 2 rows x 4 tokens
    for (int64_t tt = t0; tt < t1; tt += kQuantTokenTile) {
        const int64_t te = std::min(t1, tt + kQuantTokenTile);
        int64_t o = o0;
        if (decode) {
            for (; o + 4 <= o1; o += 4) {
                widen_scales(scales, o, 4, qx.nb, sw.data());
                tokens_for_rows<Q4, 4>(w + size_t(o) * row_bytes, row_bytes, sw.data(), qx, tt, te, job.y + o,
                                       job.y_stride);
            }
        } else {
            for (; o + 2 <= o1; o += 2) {
                widen_scales(scales, o, 2, qx.nb, sw.data());
                tokens_for_rows<Q4, 2>(w + size_t(o) * row_bytes, row_bytes, sw.data(), qx, tt, te, job.y + o,
                                       job.y_stride);
            }
        }
        for (; o < o1; o++) {
            widen_scales(scales, o, 1, qx.nb, sw.data());
            tokens_for_rows<Q4, 1>(w + size_t(o) * row_bytes, row_bytes, sw.data(), qx, tt, te, job.y + o,
                                   job.y_stride);
        }
    }
}

}  // namespace

void matmul_quant_avx2(const MatmulJob &job, const uint16_t *scales, const QuantizedX &qx, int64_t t0, int64_t t1,
                       int64_t o0, int64_t o1)
{
    if (job.w_dtype == DType::Q4) matmul_quant<true>(job, scales, qx, t0, t1, o0, o1);
    else matmul_quant<false>(job, scales, qx, t0, t1, o0, o1);
}

}  // namespace vlm
