// cpu_matmul_quant_avx2.cpp: the AVX2 Q8/Q4 product (see cpu_matmul_quant.h
// for the arithmetic and why a token's result does not depend on n).
// Register tile: R weight rows x NT tokens accumulators of 8 float lanes,
// R * NT <= 8 so that the tile, the unpacked weight blocks and the token's
// quants fit AVX2's 16 registers (4 x 4 spilled): 4 x 1 for decode, 2 x 4
// for batches (Q8; Q4 is further down). A weight block is loaded once per
// tile and used by all its tokens. The rows' f16 scales are widened once
// per row group. Tokens are taken in tiles of kQuantTokenTile so their
// rounded activations stay in L2 while a thread walks its rows.
#include "backend/cpu_matmul_quant.h"

#define VLM_UNROLL _Pragma("GCC unroll 16")

#include <immintrin.h>

#include <algorithm>
#include <cstring>
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

template <int R, int NT>
void q8_tile(const uint8_t *w, size_t row_bytes, const float *sw, const QuantizedX &qx, int64_t t0,
                float *y, int64_t y_stride)
{
    const int64_t nb = qx.nb;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[R][NT];
    VLM_UNROLL for (int r = 0; r < R; r++)
        VLM_UNROLL for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps();

    for (int64_t b = 0; b < nb; b++) {
        __m256i wv[R];
        VLM_UNROLL for (int r = 0; r < R; r++) {
            const uint8_t *p = w + size_t(r) * row_bytes;
            wv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + b * 32));
        }
        VLM_UNROLL for (int t = 0; t < NT; t++) {
            const size_t blk = size_t(t0 + t) * size_t(nb) + size_t(b);
            const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(qx.q + blk * 32));
            const __m256 xs = _mm256_broadcast_ss(qx.scale + blk);
            const __m256i xa = _mm256_sign_epi8(xq, xq);  // |x_q|: x_q is never -128
            VLM_UNROLL for (int r = 0; r < R; r++) {
                const __m256i pairs = _mm256_maddubs_epi16(xa, _mm256_sign_epi8(wv[r], xq));
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
template <int R>
void tokens_for_rows(const uint8_t *w, size_t row_bytes, const float *sw, const QuantizedX &qx, int64_t t0,
                     int64_t t1, float *y, int64_t y_stride)
{
    int64_t t = t0;
    if constexpr (R <= 2)
        for (; t + 4 <= t1; t += 4)
            q8_tile<R, 4>(w, row_bytes, sw, qx, t, y + size_t(t) * size_t(y_stride), y_stride);
    for (; t < t1;) {
        float *yt = y + size_t(t) * size_t(y_stride);
        switch (std::min<int64_t>(t1 - t, 2)) {
        case 2: q8_tile<R, 2>(w, row_bytes, sw, qx, t, yt, y_stride); t += 2; break;
        default: q8_tile<R, 1>(w, row_bytes, sw, qx, t, yt, y_stride); t += 1; break;
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

void matmul_q8(const MatmulJob &job, const uint16_t *scales, const QuantizedX &qx, int64_t t0, int64_t t1,
                  int64_t o0, int64_t o1)
{
    const size_t row_bytes = size_t(qx.nb) * 32;
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
                tokens_for_rows<4>(w + size_t(o) * row_bytes, row_bytes, sw.data(), qx, tt, te, job.y + o,
                                       job.y_stride);
            }
        } else {
            for (; o + 2 <= o1; o += 2) {
                widen_scales(scales, o, 2, qx.nb, sw.data());
                tokens_for_rows<2>(w + size_t(o) * row_bytes, row_bytes, sw.data(), qx, tt, te, job.y + o,
                                       job.y_stride);
            }
        }
        for (; o < o1; o++) {
            widen_scales(scales, o, 1, qx.nb, sw.data());
            tokens_for_rows<1>(w + size_t(o) * row_bytes, row_bytes, sw.data(), qx, tt, te, job.y + o,
                                   job.y_stride);
        }
    }
}

// ---- Q4: eight weight rows in the eight lanes ----------------------------
// A row-tiled product like the Q8 one above spends most of its instructions turning each block's
// 8 lanes of partial sums into one float. Here a register holds the same 4
// quant bytes (8 weights) of 8 rows, one row per 32-bit lane (a dword
// transpose of 8 rows' 16-byte blocks), and the token's matching 4 int8s are
// broadcast: vpmaddubsw gives each row lane its partial sums directly. The
// eight maddubs of a block are summed as int16 (|pair| <= 2 * 15 * 127, eight
// of them < 2^15: exact), one vpmaddwd makes each lane the row's block sum,
// and one conversion and FMA serve 8 rows. The block sums are the same
// exact integers as the reference's, and every (row, token) lane sees the
// same instructions whatever n: the result does not depend on the batch.

// Scales of blocks [b, b + 8) of 8 rows (f16) into `out` as 8 groups of 8
// floats: block b's 8 row scales, then block b + 1's, ...
inline void scales_8x8(const uint16_t *const rows[8], int64_t b, float *out)
{
    __m256 r[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(rows[i] + b)));
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(out + 0, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(out + 16, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(out + 24, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(out + 32, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(out + 40, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(out + 48, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(out + 56, _mm256_permute2f128_ps(u3, u7, 0x31));
}

inline __m256i load_pair(const uint8_t *lo, const uint8_t *hi)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(lo))),
                                   _mm_loadu_si128(reinterpret_cast<const __m128i *>(hi)), 1);
}

inline int32_t load_i32(const int8_t *p)
{
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// y for tokens [t0, t0 + NT) and the 8 rows `rows` (lane i: rows[i]);
// `swt` holds each block's 8 row scales (nb x 8 floats).
template <int NT>
void q4_rows8_tile(const uint8_t *const rows[8], const float *swt, const QuantizedX &qx, int64_t t0, __m256 acc[NT])
{
    const int64_t nb = qx.nb;
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const size_t off = size_t(b) * 16;
        const __m256i a = load_pair(rows[0] + off, rows[4] + off), c = load_pair(rows[1] + off, rows[5] + off);
        const __m256i d = load_pair(rows[2] + off, rows[6] + off), e = load_pair(rows[3] + off, rows[7] + off);
        const __m256i ac_lo = _mm256_unpacklo_epi32(a, c), ac_hi = _mm256_unpackhi_epi32(a, c);
        const __m256i de_lo = _mm256_unpacklo_epi32(d, e), de_hi = _mm256_unpackhi_epi32(d, e);
        // g[j]: dword j (quant bytes 4j..4j+3) of rows 0..7, one per lane.
        const __m256i g[4] = {_mm256_unpacklo_epi64(ac_lo, de_lo), _mm256_unpackhi_epi64(ac_lo, de_lo),
                              _mm256_unpacklo_epi64(ac_hi, de_hi), _mm256_unpackhi_epi64(ac_hi, de_hi)};
        __m256i s16[NT];
        for (int t = 0; t < NT; t++) s16[t] = _mm256_setzero_si256();
        VLM_UNROLL for (int j = 0; j < 4; j++) {
            const __m256i lo = _mm256_and_si256(g[j], low4);                         // weights 4j..4j+3
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(g[j], 4), low4);  // weights 16+4j..
            VLM_UNROLL for (int t = 0; t < NT; t++) {
                const int8_t *xq = qx.q + (size_t(t0 + t) * size_t(nb) + size_t(b)) * 32;
                s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(load_i32(xq + 4 * j))));
                s16[t] = _mm256_add_epi16(s16[t],
                                          _mm256_maddubs_epi16(hi, _mm256_set1_epi32(load_i32(xq + 16 + 4 * j))));
            }
        }
        const __m256 sw = _mm256_loadu_ps(swt + size_t(b) * 8);
        VLM_UNROLL for (int t = 0; t < NT; t++) {
            const size_t blk = size_t(t0 + t) * size_t(nb) + size_t(b);
            const __m256i isum = _mm256_sub_epi32(_mm256_madd_epi16(s16[t], ones), _mm256_set1_epi32(qx.sum8[blk]));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(sw, _mm256_broadcast_ss(qx.scale + blk)),
                                     acc[t]);
        }
    }
}

void matmul_q4_rows8(const MatmulJob &job, const uint16_t *scales, const QuantizedX &qx, int64_t t0, int64_t t1,
                     int64_t o0, int64_t o1)
{
    const int64_t nb = qx.nb;
    const size_t row_bytes = size_t(nb) * 16;
    const uint8_t *w = static_cast<const uint8_t *>(job.w);
    thread_local std::vector<float> swt;  // grows once per thread
    if (swt.size() < size_t(nb + 8) * 8) swt.resize(size_t(nb + 8) * 8);
    for (int64_t o = o0; o < o1; o += 8) {
        const int valid = int(std::min<int64_t>(8, o1 - o));
        const uint8_t *rows[8];
        const uint16_t *srows[8];
        for (int i = 0; i < 8; i++) {
            const int64_t r = o + std::min(i, valid - 1);  // missing rows repeat the last: their lanes are dropped
            rows[i] = w + size_t(r) * row_bytes;
            srows[i] = scales + size_t(r) * size_t(nb);
        }
        int64_t b = 0;
        for (; b + 8 <= nb; b += 8) scales_8x8(srows, b, swt.data() + size_t(b) * 8);
        if (b < nb) {  // the last blocks, through a zero-padded copy (no read past a row's scales)
            uint16_t tail[8][8] = {};
            const uint16_t *trows[8];
            for (int i = 0; i < 8; i++) {
                std::memcpy(tail[i], srows[i] + b, size_t(nb - b) * 2);
                trows[i] = tail[i];
            }
            float blk[64];
            scales_8x8(trows, 0, blk);
            std::memcpy(swt.data() + size_t(b) * 8, blk, size_t(nb - b) * 8 * sizeof(float));
        }
        for (int64_t t = t0; t < t1;) {
            __m256 acc[4];
            int nt;
            if (t1 - t >= 4) q4_rows8_tile<4>(rows, swt.data(), qx, t, acc), nt = 4;
            else if (t1 - t == 3) q4_rows8_tile<3>(rows, swt.data(), qx, t, acc), nt = 3;
            else if (t1 - t == 2) q4_rows8_tile<2>(rows, swt.data(), qx, t, acc), nt = 2;
            else q4_rows8_tile<1>(rows, swt.data(), qx, t, acc), nt = 1;
            for (int k = 0; k < nt; k++) {
                float *y = job.y + size_t(t + k) * size_t(job.y_stride) + size_t(o);
                if (valid == 8) {
                    _mm256_storeu_ps(y, acc[k]);
                } else {
                    float lanes[8];
                    _mm256_storeu_ps(lanes, acc[k]);
                    std::memcpy(y, lanes, size_t(valid) * sizeof(float));
                }
            }
            t += nt;
        }
    }
}

}  // namespace

void matmul_quant_avx2(const MatmulJob &job, const uint16_t *scales, const QuantizedX &qx, int64_t t0, int64_t t1,
                       int64_t o0, int64_t o1)
{
    if (job.w_dtype == DType::Q4) matmul_q4_rows8(job, scales, qx, t0, t1, o0, o1);
    else matmul_q8(job, scales, qx, t0, t1, o0, o1);
}

}  // namespace vlm
