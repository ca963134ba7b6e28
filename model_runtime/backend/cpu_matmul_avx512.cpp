// cpu_matmul_avx512.cpp: AVX-512 matmul kernels (see cpu_matmul.h): the
// streaming "rows" kernels (f32 activations with weights widened in
// registers, or bf16 activations with vdpbf16ps) and the vdpbf16ps GEMM for
// bf16 weights at large n. Built with
// -mavx512{f,bw,vl,dq,bf16}; only called after a run-time CPU check.
#include "backend/cpu_matmul.h"

// The register tiles rely on their small fixed loops being fully unrolled;
// without that GCC 12 (-O3) keeps the accumulators in memory and stores them
// on every k step.
#define VLM_UNROLL _Pragma("GCC unroll 16")

// GCC 12's AVX-512 headers initialise "undefined" vectors from themselves,
// which -Wuninitialized reports wherever they are inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace vlm {
namespace {

// 16 weights starting at p, widened to f32 (bf16 -> f32 is exact: a shift).
template <DType D>
inline __m512 load_w16(const void *p, int64_t c)
{
    if constexpr (D == DType::F32) {
        return _mm512_loadu_ps(static_cast<const float *>(p) + c);
    } else if constexpr (D == DType::BF16) {
        __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(static_cast<const uint16_t *>(p) + c));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
        __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(static_cast<const uint16_t *>(p) + c));
        return _mm512_cvtph_ps(h);
    }
}

template <DType D>
inline __m512 load_w16_masked(const void *p, int64_t c, __mmask16 m)
{
    if constexpr (D == DType::F32) {
        return _mm512_maskz_loadu_ps(m, static_cast<const float *>(p) + c);
    } else if constexpr (D == DType::BF16) {
        __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t *>(p) + c);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
        __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t *>(p) + c);
        return _mm512_cvtph_ps(h);
    }
}

// Horizontal sum of 16 lanes.
inline float hsum16(__m512 v)
{
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
}

// y[t0 + t][o0 + r] = horizontal sum of acc[r][t]. Going through memory
// here keeps GCC from spilling the accumulators inside the hot loop.
template <int R, int N>
inline void store_sums(const __m512 (&acc)[R][N], const MatmulJob &j, int64_t t0, int64_t o0)
{
    alignas(64) float tmp[R][N][16];
    VLM_UNROLL for (int r = 0; r < R; r++)
        VLM_UNROLL for (int t = 0; t < N; t++) _mm512_store_ps(tmp[r][t], acc[r][t]);
    VLM_UNROLL for (int t = 0; t < N; t++) {
        float *y = j.y + size_t(t0 + t) * size_t(j.y_stride) + o0;
        VLM_UNROLL for (int r = 0; r < R; r++) y[r] = hsum16(_mm512_load_ps(tmp[r][t]));
    }
}

inline const void *w_row(const MatmulJob &j, int64_t o)
{
    size_t esz = j.w_dtype == DType::F32 ? 4 : 2;
    return static_cast<const char *>(j.w) + size_t(o) * size_t(j.w_stride) * esz;
}

// R weight rows x N tokens, full k, accumulators in registers.
template <DType D, int R, int N>
void rows_tile(const MatmulJob &j, int64_t t0, int64_t o0)
{
    const void *w[R];
    const float *x[N];
    VLM_UNROLL for (int r = 0; r < R; r++) w[r] = w_row(j, o0 + r);
    VLM_UNROLL for (int t = 0; t < N; t++) x[t] = j.x + size_t(t0 + t) * size_t(j.x_stride);
    __m512 acc[R][N];
    VLM_UNROLL for (int r = 0; r < R; r++)
        VLM_UNROLL for (int t = 0; t < N; t++) acc[r][t] = _mm512_setzero_ps();
    const int64_t k = j.k;
    int64_t c = 0;
    for (; c + 16 <= k; c += 16) {
        __m512 xv[N];
        VLM_UNROLL for (int t = 0; t < N; t++) xv[t] = _mm512_loadu_ps(x[t] + c);
        VLM_UNROLL for (int r = 0; r < R; r++) {
            __m512 wv = load_w16<D>(w[r], c);
            VLM_UNROLL for (int t = 0; t < N; t++) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    if (c < k) {
        __mmask16 m = __mmask16((1u << (k - c)) - 1u);
        __m512 xv[N];
        VLM_UNROLL for (int t = 0; t < N; t++) xv[t] = _mm512_maskz_loadu_ps(m, x[t] + c);
        VLM_UNROLL for (int r = 0; r < R; r++) {
            __m512 wv = load_w16_masked<D>(w[r], c, m);
            VLM_UNROLL for (int t = 0; t < N; t++) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    store_sums<R, N>(acc, j, t0, o0);
}

template <DType D, int R>
void rows_tokens(const MatmulJob &j, int64_t t0, int64_t t1, int64_t o)
{
    int64_t t = t0;
    for (; t + 4 <= t1; t += 4) rows_tile<D, R, 4>(j, t, o);
    switch (t1 - t) {
    case 3: rows_tile<D, R, 3>(j, t, o); break;
    case 2: rows_tile<D, R, 2>(j, t, o); break;
    case 1: rows_tile<D, R, 1>(j, t, o); break;
    default: break;
    }
}

template <DType D>
void rows_impl(const MatmulJob &j, int64_t t0, int64_t t1, int64_t o0, int64_t o1)
{
    // Token blocks of kSmallN keep their activations in L1/L2 while the
    // weight rows of this range stream past them.
    for (int64_t tb = t0; tb < t1; tb += kSmallN) {
        int64_t te = std::min(t1, tb + kSmallN);
        int64_t o = o0;
        if (te - tb == 1) {
            for (; o + 8 <= o1; o += 8) rows_tile<D, 8, 1>(j, tb, o);
        }
        for (; o + 4 <= o1; o += 4) rows_tokens<D, 4>(j, tb, te, o);
        for (; o < o1; o++) rows_tokens<D, 1>(j, tb, te, o);
    }
}

// ---- bf16 weights, small n: activations pre-split into even/odd halves ----
// A 64-byte load of 32 bf16 weights gives the even-k weights as f32 with one
// shift and the odd-k weights with one AND (no cross-lane widening), so x is
// packed per 32-column chunk as [16 even][16 odd] (see pack_x_even_odd).

// R rows x N tokens over columns [c0, c1) (c0 a multiple of 32). The
// accumulators come from / go to `state` (R*N vectors) so a row group can
// walk k in blocks and serve all its token groups from L1.
template <int R, int N>
void rows_tile_bf16_eo(const MatmulJob &j, const float *xp, int64_t kp, int64_t t0, int64_t o0, int64_t c0,
                       int64_t c1, __m512 *state, bool first)
{
    const uint16_t *w[R];
    const float *x[N];
    VLM_UNROLL for (int r = 0; r < R; r++) w[r] = static_cast<const uint16_t *>(w_row(j, o0 + r));
    VLM_UNROLL for (int t = 0; t < N; t++) x[t] = xp + size_t(t0 + t) * size_t(kp);
    __m512 acc[R][N];
    VLM_UNROLL for (int r = 0; r < R; r++)
        VLM_UNROLL for (int t = 0; t < N; t++) acc[r][t] = first ? _mm512_setzero_ps() : state[r * N + t];
    const __m512i hi_mask = _mm512_set1_epi32(int(0xffff0000u));
    // The first token group also prefetches the same columns of the next R
    // rows into L2, one group ahead of use: hardware prefetchers alone
    // leave DRAM idle between the R interleaved row streams.
    const bool prefetch = t0 == 0;
    const size_t next_group = size_t(R) * size_t(j.w_stride);
    // One 32-column chunk; `m` masks the weight tail (x is zero padded).
    auto step = [&](int64_t c, __mmask32 m) __attribute__((always_inline)) {
        if (prefetch)
            VLM_UNROLL for (int r = 0; r < R; r++)
                _mm_prefetch(reinterpret_cast<const char *>(w[r] + c + next_group), _MM_HINT_T1);
        __m512 xe[N], xo[N];
        VLM_UNROLL for (int t = 0; t < N; t++) {
            xe[t] = _mm512_loadu_ps(x[t] + c);
            xo[t] = _mm512_loadu_ps(x[t] + c + 16);
        }
        VLM_UNROLL for (int r = 0; r < R; r++) {
            __m512i raw = _mm512_maskz_loadu_epi16(m, w[r] + c);
            __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16));
            __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(raw, hi_mask));
            VLM_UNROLL for (int t = 0; t < N; t++) {
                acc[r][t] = _mm512_fmadd_ps(we, xe[t], acc[r][t]);
                acc[r][t] = _mm512_fmadd_ps(wo, xo[t], acc[r][t]);
            }
        }
    };
    int64_t c = c0;
    for (; c + 32 <= c1; c += 32) step(c, __mmask32(0xffffffffu));
    if (c < c1) step(c, __mmask32((1ull << (c1 - c)) - 1ull));
    VLM_UNROLL for (int r = 0; r < R; r++)
        VLM_UNROLL for (int t = 0; t < N; t++) state[r * N + t] = acc[r][t];
}

// Rows [o, o + R) for all n <= kSmallN tokens. Up to 4 tokens: one pass
// over k. More: k in blocks of 512 columns, every token group per block, so
// the block's weights are fetched from memory once and re-read from L1 by
// the other token groups (256-column blocks measured no better at n = 16).
template <int R>
void rows_group_bf16_eo(const MatmulJob &j, const float *xp, int64_t kp, int64_t o)
{
    const int64_t n = j.n, k = j.k;
    alignas(64) __m512 state[kSmallN / 4][R * 4];
    const int64_t block = n <= 4 ? k : 512;
    for (int64_t c0 = 0; c0 < k; c0 += block) {
        const int64_t c1 = std::min(k, c0 + block);
        const bool first = c0 == 0;
        for (int64_t t = 0; t < n; t += 4) {
            __m512 *st = state[t / 4];
            switch (std::min<int64_t>(4, n - t)) {
            case 4: rows_tile_bf16_eo<R, 4>(j, xp, kp, t, o, c0, c1, st, first); break;
            case 3: rows_tile_bf16_eo<R, 3>(j, xp, kp, t, o, c0, c1, st, first); break;
            case 2: rows_tile_bf16_eo<R, 2>(j, xp, kp, t, o, c0, c1, st, first); break;
            default: rows_tile_bf16_eo<R, 1>(j, xp, kp, t, o, c0, c1, st, first); break;
            }
        }
    }
    for (int64_t t = 0; t < n; t += 4) {
        const int nt = int(std::min<int64_t>(4, n - t));
        for (int i = 0; i < nt; i++) {
            float *y = j.y + size_t(t + i) * size_t(j.y_stride) + o;
            for (int r = 0; r < R; r++) y[r] = hsum16(state[t / 4][r * nt + i]);
        }
    }
}

// ---- bf16 weights, small n, vdpbf16ps: activations rounded to bf16 ----
// Each (weight row, token) pair owns one accumulator whose lane i sums the
// products of columns 32q + 2i and 32q + 2i + 1 for q = 0, 1, ... in order,
// then one fixed horizontal sum. That order depends only on k, never on n,
// the tile shape or the k blocking (blocks save and restore the f32
// accumulators exactly), so a token's outputs are bit-identical whatever
// other tokens share the call.

// R rows x N tokens over columns [c0, c1) (c0 a multiple of 32); xb rows
// are kp bf16 wide, zero padded past k.
template <int R, int N>
void rows_tile_bf16_dot(const MatmulJob &j, const uint16_t *xb, int64_t kp, int64_t t0, int64_t o0, int64_t c0,
                        int64_t c1, __m512 *state, bool first, ptrdiff_t prefetch_offset)
{
    const uint16_t *w[R];
    const uint16_t *x[N];
    VLM_UNROLL for (int r = 0; r < R; r++) w[r] = static_cast<const uint16_t *>(w_row(j, o0 + r));
    VLM_UNROLL for (int t = 0; t < N; t++) x[t] = xb + size_t(t0 + t) * size_t(kp);
    __m512 acc[R][N];
    VLM_UNROLL for (int r = 0; r < R; r++)
        VLM_UNROLL for (int t = 0; t < N; t++) acc[r][t] = first ? _mm512_setzero_ps() : state[r * N + t];
    // Prefetch into L2 the weights a later tile will read (w[r] + c +
    // prefetch_offset; hardware prefetchers alone leave DRAM idle between
    // the interleaved row streams). The token groups share that work (row r
    // by group r % groups) so DRAM stays busy while they compute.
    const int group = int(t0 / 4), groups = int((j.n + 3) / 4);
    unsigned prefetch_rows = 0;
    for (int r = 0; r < R; r++)
        if (r % groups == group) prefetch_rows |= 1u << r;
    auto step = [&](int64_t c, __mmask32 m) __attribute__((always_inline)) {
        VLM_UNROLL for (int r = 0; r < R; r++)
            if (prefetch_rows >> r & 1u)
                _mm_prefetch(reinterpret_cast<const char *>(w[r] + c + prefetch_offset), _MM_HINT_T1);
        __m512bh xv[N];
        VLM_UNROLL for (int t = 0; t < N; t++) xv[t] = (__m512bh)_mm512_loadu_si512(x[t] + c);
        VLM_UNROLL for (int r = 0; r < R; r++) {
            __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(m, w[r] + c);
            VLM_UNROLL for (int t = 0; t < N; t++) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], wv, xv[t]);
        }
    };
    int64_t c = c0;
    for (; c + 32 <= c1; c += 32) step(c, __mmask32(0xffffffffu));
    if (c < c1) step(c, __mmask32((1ull << (c1 - c)) - 1ull));
    VLM_UNROLL for (int r = 0; r < R; r++)
        VLM_UNROLL for (int t = 0; t < N; t++) state[r * N + t] = acc[r][t];
}

// Rows [o, o + groups * R) (at most kDotSubRows) for all n <= kSmallN
// tokens. Up to 4 tokens: one pass over k per row group (bandwidth-bound).
// More: k in blocks of kDotBlock columns, outermost, so a block of x is
// reused by every row group of the sub-range from L1/L2, and each row
// group's block of weights is fetched once and re-read from L1 by the
// other token groups. Measured on the 4096x14336 matmul at n = 16 (one
// thread): 2048-column blocks of 16 rows beat 512/1024 columns and 32/64
// rows (longer contiguous weight runs stream better from DRAM), and with
// the weights in cache they beat walking all of k per 4-row group
// (which re-reads the whole of x from L2 every 4 rows) by 1.5x at k = 14336.
constexpr int64_t kDotSubRows = 16;
constexpr int64_t kDotBlock = 2048;

template <int R>
void rows_sub_bf16_dot(const MatmulJob &j, const uint16_t *xb, int64_t kp, int64_t o, int groups)
{
    const int64_t n = j.n, k = j.k;
    const int64_t tgroups = (n + 3) / 4;
    alignas(64) __m512 state[kDotSubRows * kSmallN];  // [group][token group][R * 4]
    const int64_t block = n <= 4 ? k : kDotBlock;
    const int64_t n_blocks = (k + block - 1) / block;
    // Tiles run block-major: tile i = (block i / groups, group i % groups)
    // prefetches the weights of tile i + ahead (past the sub-range: the
    // next sub-range's first block). One tile of a full-k pass is already
    // long; a 512-column tile needs two to cover DRAM latency.
    const int64_t ahead = n <= 4 ? 1 : 2;
    const ptrdiff_t ws = ptrdiff_t(j.w_stride);
    for (int64_t b = 0; b < n_blocks; b++) {
        const int64_t c0 = b * block, c1 = std::min(k, c0 + block);
        const bool first = c0 == 0;
        for (int g = 0; g < groups; g++) {
            const int64_t og = o + int64_t(g) * R;
            const int64_t next = b * groups + g + ahead;
            ptrdiff_t pf;
            if (next < n_blocks * groups)
                pf = ptrdiff_t(next % groups - g) * R * ws + ptrdiff_t(next / groups - b) * block;
            else
                pf = ptrdiff_t(groups - g) * R * ws - ptrdiff_t(c0);
            for (int64_t t = 0; t < n; t += 4) {
                __m512 *st = state + (size_t(g) * size_t(tgroups) + size_t(t / 4)) * size_t(R * 4);
                switch (std::min<int64_t>(4, n - t)) {
                case 4: rows_tile_bf16_dot<R, 4>(j, xb, kp, t, og, c0, c1, st, first, pf); break;
                case 3: rows_tile_bf16_dot<R, 3>(j, xb, kp, t, og, c0, c1, st, first, pf); break;
                case 2: rows_tile_bf16_dot<R, 2>(j, xb, kp, t, og, c0, c1, st, first, pf); break;
                default: rows_tile_bf16_dot<R, 1>(j, xb, kp, t, og, c0, c1, st, first, pf); break;
                }
            }
        }
    }
    for (int g = 0; g < groups; g++)
        for (int64_t t = 0; t < n; t += 4) {
            const __m512 *st = state + (size_t(g) * size_t(tgroups) + size_t(t / 4)) * size_t(R * 4);
            const int nt = int(std::min<int64_t>(4, n - t));
            for (int i = 0; i < nt; i++) {
                float *y = j.y + size_t(t + i) * size_t(j.y_stride) + o + int64_t(g) * R;
                for (int r = 0; r < R; r++) y[r] = hsum16(st[r * nt + i]);
            }
        }
}

// Rows [o, o1) in sub-ranges of up to kDotSubRows rows, R rows per group;
// returns the first row not covered (fewer than R left).
template <int R>
int64_t rows_range_bf16_dot(const MatmulJob &j, const uint16_t *xb, int64_t kp, int64_t o, int64_t o1)
{
    while (o + R <= o1) {
        const int groups = int(std::min<int64_t>(kDotSubRows, o1 - o) / R);
        rows_sub_bf16_dot<R>(j, xb, kp, o, groups);
        o += int64_t(groups) * R;
    }
    return o;
}

// ---- bf16 GEMM ----

// 8 rows x (16 * V) tokens of one packed panel over k pairs [p0, p1);
// `accumulate` adds to y (later k blocks) instead of overwriting it.
template <int V>
void gemm_tile(const MatmulJob &j, const uint32_t *panel, int64_t n_tok, int64_t o0, int rows, int64_t p0,
               int64_t p1, bool accumulate)
{
    // Weight rows need only 2-byte alignment (column views): memcpy the pair.
    const uint16_t *w[kGemmRows];
    VLM_UNROLL for (int r = 0; r < kGemmRows; r++)
        w[r] = static_cast<const uint16_t *>(w_row(j, o0 + std::min(r, rows - 1)));
    __m512 acc[kGemmRows][V];
    VLM_UNROLL for (int r = 0; r < kGemmRows; r++)
        VLM_UNROLL for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
    for (int64_t p = p0; p < p1; p++) {
        __m512bh xv[V];
        VLM_UNROLL for (int v = 0; v < V; v++)
            xv[v] = (__m512bh)_mm512_loadu_si512(panel + size_t(p) * kGemmTokens + 16 * v);
        VLM_UNROLL for (int r = 0; r < kGemmRows; r++) {
            uint32_t pair;
            std::memcpy(&pair, w[r] + 2 * p, 4);
            __m512bh wv = (__m512bh)_mm512_set1_epi32(int(pair));
            VLM_UNROLL for (int v = 0; v < V; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], xv[v], wv);
        }
    }
    alignas(64) float tmp[kGemmRows][16 * V];
    VLM_UNROLL for (int r = 0; r < kGemmRows; r++)
        VLM_UNROLL for (int v = 0; v < V; v++) _mm512_store_ps(&tmp[r][16 * v], acc[r][v]);
    for (int64_t t = 0; t < n_tok; t++) {
        float *y = j.y + size_t(t) * size_t(j.y_stride) + o0;
        if (accumulate)
            for (int r = 0; r < rows; r++) y[r] += tmp[r][t];
        else
            for (int r = 0; r < rows; r++) y[r] = tmp[r][t];
    }
}

}  // namespace

void matmul_rows_avx512(const MatmulJob &job, int64_t t0, int64_t t1, int64_t o0, int64_t o1)
{
    switch (job.w_dtype) {
    case DType::F32: rows_impl<DType::F32>(job, t0, t1, o0, o1); break;
    case DType::BF16: rows_impl<DType::BF16>(job, t0, t1, o0, o1); break;
    case DType::F16: rows_impl<DType::F16>(job, t0, t1, o0, o1); break;
    default: break;
    }
}

int64_t even_odd_cols(int64_t k) { return (k + 31) / 32 * 32; }

void pack_x_even_odd_avx512(const MatmulJob &job, float *dst)
{
    const int64_t kp = even_odd_cols(job.k);
    const __m512i even_idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd_idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int64_t t = 0; t < job.n; t++) {
        const float *x = job.x + size_t(t) * size_t(job.x_stride);
        float *d = dst + size_t(t) * size_t(kp);
        for (int64_t c = 0; c < kp; c += 32) {
            int64_t left = job.k - c;
            __mmask16 m0 = left >= 16 ? __mmask16(0xffff) : left > 0 ? __mmask16((1u << left) - 1u) : 0;
            __mmask16 m1 = left >= 32 ? __mmask16(0xffff) : left > 16 ? __mmask16((1u << (left - 16)) - 1u) : 0;
            __m512 a = _mm512_maskz_loadu_ps(m0, x + c);
            __m512 b = _mm512_maskz_loadu_ps(m1, x + c + 16);
            _mm512_storeu_ps(d + c, _mm512_permutex2var_ps(a, even_idx, b));
            _mm512_storeu_ps(d + c + 16, _mm512_permutex2var_ps(a, odd_idx, b));
        }
    }
}

void matmul_rows_bf16_eo_avx512(const MatmulJob &job, const float *xp, int64_t o0, int64_t o1)
{
    const int64_t kp = even_odd_cols(job.k);
    int64_t o = o0;
    if (job.n == 1)
        for (; o + 8 <= o1; o += 8) rows_group_bf16_eo<8>(job, xp, kp, o);
    for (; o + 4 <= o1; o += 4) rows_group_bf16_eo<4>(job, xp, kp, o);
    for (; o < o1; o++) rows_group_bf16_eo<1>(job, xp, kp, o);
}

void pack_x_bf16_rows_avx512(const MatmulJob &job, uint16_t *dst)
{
    const int64_t kp = even_odd_cols(job.k);
    for (int64_t t = 0; t < job.n; t++) {
        const float *x = job.x + size_t(t) * size_t(job.x_stride);
        uint16_t *d = dst + size_t(t) * size_t(kp);
        for (int64_t c = 0; c < kp; c += 32) {
            int64_t left = job.k - c;
            __mmask16 m0 = left >= 16 ? __mmask16(0xffff) : left > 0 ? __mmask16((1u << left) - 1u) : 0;
            __mmask16 m1 = left >= 32 ? __mmask16(0xffff) : left > 16 ? __mmask16((1u << (left - 16)) - 1u) : 0;
            __m512 lo = _mm512_maskz_loadu_ps(m0, x + c);
            __m512 hi = _mm512_maskz_loadu_ps(m1, x + c + 16);
            // Round to nearest even, like pack_x_bf16_avx512.
            _mm512_storeu_si512(d + c, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

void matmul_rows_bf16_dot_avx512(const MatmulJob &job, const uint16_t *xb, int64_t o0, int64_t o1)
{
    const int64_t kp = even_odd_cols(job.k);
    int64_t o = o0;
    if (job.n == 1) o = rows_range_bf16_dot<8>(job, xb, kp, o, o1);
    o = rows_range_bf16_dot<4>(job, xb, kp, o, o1);
    rows_range_bf16_dot<1>(job, xb, kp, o, o1);
}

void pack_x_bf16_avx512(const MatmulJob &job, int64_t panel, uint32_t *dst)
{
    const int64_t pairs = job.k / 2;
    const int64_t t_begin = panel * kGemmTokens;
    const int64_t n_tok = std::min<int64_t>(kGemmTokens, job.n - t_begin);
    if (n_tok < kGemmTokens) std::memset(dst, 0, size_t(pairs) * kGemmTokens * 4);
    alignas(64) uint32_t words[16];
    for (int64_t t = 0; t < n_tok; t++) {
        const float *x = job.x + size_t(t_begin + t) * size_t(job.x_stride);
        int64_t p = 0;
        for (; p + 16 <= pairs; p += 16) {
            __m512 lo = _mm512_loadu_ps(x + 2 * p);
            __m512 hi = _mm512_loadu_ps(x + 2 * p + 16);
            _mm512_store_si512(words, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
            for (int i = 0; i < 16; i++) dst[size_t(p + i) * kGemmTokens + t] = words[i];
        }
        for (; p < pairs; p++) {
            __m128 two = _mm_setr_ps(x[2 * p], x[2 * p + 1], 0.0f, 0.0f);
            __m128bh b = _mm_cvtneps_pbh(two);
            uint32_t word;
            std::memcpy(&word, &b, 4);
            dst[size_t(p) * kGemmTokens + t] = word;
        }
    }
}

void gemm_bf16_avx512(const MatmulJob &job, const uint32_t *xpack, int64_t o0, int64_t o1)
{
    const int64_t pairs = job.k / 2;
    const int64_t n_panels = (job.n + kGemmTokens - 1) / kGemmTokens;
    // Cache blocking: a block of 32 weight rows x 1024 k-pairs (128 KB) and
    // one panel slice (1024 pairs x 48 tokens, 192 KB) stay in L2 while the
    // microkernel runs; the weight tile of 8 rows and the panel rows it is
    // reading stream through L1.
    constexpr int64_t kRowBlock = 64;
    constexpr int64_t kPairBlock = 1024;
    for (int64_t ob = o0; ob < o1; ob += kRowBlock) {
        int64_t oe = std::min(o1, ob + kRowBlock);
        for (int64_t pb = 0; pb < pairs; pb += kPairBlock) {
            int64_t pe = std::min(pairs, pb + kPairBlock);
            for (int64_t pn = 0; pn < n_panels; pn++) {
                const uint32_t *panel = xpack + size_t(pn) * size_t(pairs) * kGemmTokens;
                int64_t n_tok = std::min<int64_t>(kGemmTokens, job.n - pn * kGemmTokens);
                MatmulJob jt = job;
                jt.y = job.y + size_t(pn * kGemmTokens) * size_t(job.y_stride);
                for (int64_t o = ob; o < oe; o += kGemmRows) {
                    int rows = int(std::min<int64_t>(kGemmRows, oe - o));
                    if (n_tok > 32) gemm_tile<3>(jt, panel, n_tok, o, rows, pb, pe, pb > 0);
                    else if (n_tok > 16) gemm_tile<2>(jt, panel, n_tok, o, rows, pb, pe, pb > 0);
                    else gemm_tile<1>(jt, panel, n_tok, o, rows, pb, pe, pb > 0);
                }
            }
        }
    }
}

}  // namespace vlm
