// cpu_attention_avx512.cpp: AVX-512 attention for one head and a block of
// up to kAttnQueryBlock queries (see cpu_attention.h). Scores for the whole
// block against its visible keys go to a per-thread buffer (block x n_kv
// floats, never n x n), then an exact float softmax per row (max
// subtraction, as torch), then P.V. Keys are read from a transposed copy
// (head_dim x keys) so 16 keys fill a vector; 8 queries x 32 keys per
// microkernel, 2 queries x head_dim for P.V, both blocked so the key/value
// tile stays in L1 while all the block's queries use it.
#include "backend/cpu_attention.h"

// The register tiles rely on their small fixed loops being fully unrolled;
// without that GCC 12 (-O3) keeps the accumulators in memory and stores them
// on every k step.
#define VLM_UNROLL _Pragma("GCC unroll 16")

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "backend/cpu_vec_avx512.h"

#include <algorithm>
#include <cmath>

namespace vlm {
namespace {

// S[i][j - j0] for 8 queries (rows of q, stride qs) x 16*V keys starting at
// j0, reading kt (head_dim rows of ld floats).
template <int V>
void scores_tile(const float *const *q, int hd, const float *kt, int64_t ld, int64_t j0, float scale, float *s,
                 int64_t s_ld, int rows)
{
    __m512 acc[8][V];
    VLM_UNROLL for (int i = 0; i < 8; i++)
        VLM_UNROLL for (int v = 0; v < V; v++) acc[i][v] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        const float *krow = kt + size_t(d) * size_t(ld) + j0;
        __m512 kv[V];
        VLM_UNROLL for (int v = 0; v < V; v++) kv[v] = _mm512_loadu_ps(krow + 16 * v);
        VLM_UNROLL for (int i = 0; i < 8; i++) {
            __m512 qb = _mm512_set1_ps(q[i][d]);
            VLM_UNROLL for (int v = 0; v < V; v++) acc[i][v] = _mm512_fmadd_ps(qb, kv[v], acc[i][v]);
        }
    }
    const __m512 sc = _mm512_set1_ps(scale);
    for (int i = 0; i < rows; i++)
        VLM_UNROLL for (int v = 0; v < V; v++) _mm512_storeu_ps(s + size_t(i) * size_t(s_ld) + 16 * v, _mm512_mul_ps(acc[i][v], sc));
}

// o[i] (+)= sum_j p[i][j] v[j] for 2 queries, keys [j0, j1), NV vectors of
// head_dim; acc kept in `o` (f32, hd per row) between key blocks.
template <int NV>
void pv_tile(const float *p0, const float *p1, const float *v, int64_t vs, int64_t j0, int64_t j1, float *o0,
             float *o1)
{
    __m512 a0[NV], a1[NV];
    VLM_UNROLL for (int t = 0; t < NV; t++) {
        a0[t] = _mm512_loadu_ps(o0 + 16 * t);
        a1[t] = _mm512_loadu_ps(o1 + 16 * t);
    }
    for (int64_t j = j0; j < j1; j++) {
        const float *vr = v + size_t(j) * size_t(vs);
        __m512 b0 = _mm512_set1_ps(p0[j]), b1 = _mm512_set1_ps(p1[j]);
        VLM_UNROLL for (int t = 0; t < NV; t++) {
            __m512 vv = _mm512_loadu_ps(vr + 16 * t);
            a0[t] = _mm512_fmadd_ps(b0, vv, a0[t]);
            a1[t] = _mm512_fmadd_ps(b1, vv, a1[t]);
        }
    }
    VLM_UNROLL for (int t = 0; t < NV; t++) {
        _mm512_storeu_ps(o0 + 16 * t, a0[t]);
        _mm512_storeu_ps(o1 + 16 * t, a1[t]);
    }
}

template <int NV>
void pv_block(const AttnBlock &b, const float *s, int64_t s_ld, int64_t jlo, int64_t jend, float *oacc)
{
    constexpr int64_t kKeyBlock = 64;
    const int hd = b.head_dim;
    for (int64_t jb = jlo; jb < jend; jb += kKeyBlock) {
        int64_t je = std::min(jend, jb + kKeyBlock);
        for (int i = 0; i < b.n_rows; i += 2) {
            int i1 = std::min(i + 1, b.n_rows - 1);  // odd count: duplicate the last row
            const float *p0 = s + size_t(i) * size_t(s_ld) - jlo;
            const float *p1 = s + size_t(i1) * size_t(s_ld) - jlo;
            float *o0 = oacc + size_t(i) * size_t(hd);
            float *o1 = i1 == i ? oacc + size_t(kAttnQueryBlock) * size_t(hd) : oacc + size_t(i1) * size_t(hd);
            pv_tile<NV>(p0, p1, b.v, b.v_stride, jb, je, o0, o1);
        }
    }
}

}  // namespace

void attention_block_avx512(const AttnBlock &b, float *scratch)
{
    const int hd = b.head_dim;
    int64_t jlo = b.n_kv, jhi = 0;
    for (int i = 0; i < b.n_rows; i++) {
        jlo = std::min(jlo, b.lo[i]);
        jhi = std::max(jhi, b.hi[i]);
    }
    jlo = jlo / 16 * 16;                     // kt columns are padded to 16
    const int64_t jhi_pad = (jhi + 15) / 16 * 16;
    const int64_t s_ld = jhi_pad - jlo;
    float *s = scratch;                                          // rows x s_ld
    float *oacc = scratch + size_t(kAttnQueryBlock) * size_t(s_ld);  // (rows + 1) x hd

    // Scores: key tiles of 32 (then 16) keys; all query groups of 8 per tile.
    const float *qrow[kAttnQueryBlock];
    for (int i = 0; i < kAttnQueryBlock; i++) qrow[i] = b.q + size_t(std::min(i, b.n_rows - 1)) * size_t(b.q_stride);
    for (int64_t j = jlo; j < jhi_pad;) {
        int width = jhi_pad - j >= 32 ? 32 : 16;
        for (int g = 0; g < b.n_rows; g += 8) {
            int rows = std::min(8, b.n_rows - g);
            float *sg = s + size_t(g) * size_t(s_ld) + (j - jlo);
            if (width == 32) scores_tile<2>(qrow + g, hd, b.kt, b.kt_ld, j, b.scale, sg, s_ld, rows);
            else scores_tile<1>(qrow + g, hd, b.kt, b.kt_ld, j, b.scale, sg, s_ld, rows);
        }
        j += width;
    }

    // Softmax per row over its own [lo, hi); zero elsewhere in [jlo, jhi).
    for (int i = 0; i < b.n_rows; i++) {
        float *row = s + size_t(i) * size_t(s_ld) - jlo;  // index by key
        const int64_t lo = b.lo[i], hi = b.hi[i];
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int64_t j = lo; j < hi; j += 16) {
            __mmask16 m = hi - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (hi - j)) - 1u);
            mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, row + j));
        }
        const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
        __m512 sum = _mm512_setzero_ps();
        for (int64_t j = lo; j < hi; j += 16) {
            __mmask16 m = hi - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (hi - j)) - 1u);
            __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, row + j), vmax));
            e = _mm512_maskz_mov_ps(m, e);
            sum = _mm512_add_ps(sum, e);
            _mm512_mask_storeu_ps(row + j, m, e);
        }
        const float inv = 1.0f / _mm512_reduce_add_ps(sum);
        for (int64_t j = lo; j < hi; j++) row[j] *= inv;  // normalised before P.V, like torch
        for (int64_t j = jlo; j < lo; j++) row[j] = 0.0f;
        for (int64_t j = hi; j < jhi; j++) row[j] = 0.0f;
    }

    for (size_t i = 0; i < size_t(kAttnQueryBlock + 1) * size_t(hd); i++) oacc[i] = 0.0f;
    switch (hd / 16) {
    case 1: pv_block<1>(b, s, s_ld, jlo, jhi, oacc); break;
    case 2: pv_block<2>(b, s, s_ld, jlo, jhi, oacc); break;
    case 3: pv_block<3>(b, s, s_ld, jlo, jhi, oacc); break;
    case 4: pv_block<4>(b, s, s_ld, jlo, jhi, oacc); break;
    case 5: pv_block<5>(b, s, s_ld, jlo, jhi, oacc); break;
    case 6: pv_block<6>(b, s, s_ld, jlo, jhi, oacc); break;
    case 7: pv_block<7>(b, s, s_ld, jlo, jhi, oacc); break;
    case 8: pv_block<8>(b, s, s_ld, jlo, jhi, oacc); break;
    default: break;
    }
    for (int i = 0; i < b.n_rows; i++) {
        float *orow = b.out + size_t(i) * size_t(b.out_stride);
        for (int d = 0; d < hd; d++) orow[d] = oacc[size_t(i) * size_t(hd) + size_t(d)];
    }
}

namespace {

// One query row (decode / short chunks): dot products against each visible
// key, vector softmax, then P.V with head_dim in NV registers.
template <int NV>
void attention_row_impl(const AttnRow &a, float *scores)
{
    __m512 qv[NV];
    VLM_UNROLL for (int t = 0; t < NV; t++) qv[t] = _mm512_loadu_ps(a.q + 16 * t);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t j = a.lo; j < a.hi; j++) {
        const float *kr = a.k + size_t(j) * size_t(a.k_stride);
        __m512 acc = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kr));
        for (int t = 1; t < NV; t++) acc = _mm512_fmadd_ps(qv[t], _mm512_loadu_ps(kr + 16 * t), acc);
        float sc = _mm512_reduce_add_ps(acc) * a.scale;
        scores[j] = sc;
        vmax = _mm512_max_ps(vmax, _mm512_set1_ps(sc));
    }
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = a.lo; j < a.hi; j += 16) {
        __mmask16 m = a.hi - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (a.hi - j)) - 1u);
        __m512 e = _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, scores + j), vmax)));
        sum = _mm512_add_ps(sum, e);
        _mm512_mask_storeu_ps(scores + j, m, e);
    }
    const float inv = 1.0f / _mm512_reduce_add_ps(sum);
    __m512 o[NV];
    VLM_UNROLL for (int t = 0; t < NV; t++) o[t] = _mm512_setzero_ps();
    for (int64_t j = a.lo; j < a.hi; j++) {
        const float *vr = a.v + size_t(j) * size_t(a.v_stride);
        __m512 pj = _mm512_set1_ps(scores[j] * inv);
        VLM_UNROLL for (int t = 0; t < NV; t++) o[t] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vr + 16 * t), o[t]);
    }
    VLM_UNROLL for (int t = 0; t < NV; t++) _mm512_storeu_ps(a.out + 16 * t, o[t]);
}

}  // namespace

void attention_row_avx512(const AttnRow &a, float *scores)
{
    switch (a.head_dim / 16) {
    case 1: attention_row_impl<1>(a, scores); break;
    case 2: attention_row_impl<2>(a, scores); break;
    case 3: attention_row_impl<3>(a, scores); break;
    case 4: attention_row_impl<4>(a, scores); break;
    case 5: attention_row_impl<5>(a, scores); break;
    case 6: attention_row_impl<6>(a, scores); break;
    case 7: attention_row_impl<7>(a, scores); break;
    case 8: attention_row_impl<8>(a, scores); break;
    default: break;
    }
}

void transpose_keys_avx512(const float *k, int64_t k_stride, int64_t n_kv, int hd, float *kt, int64_t ld)
{
    // Plain loops; 16x16 blocks keep both sides in cache.
    for (int64_t j0 = 0; j0 < ld; j0 += 16)
        for (int d0 = 0; d0 < hd; d0 += 16)
            for (int64_t j = j0; j < j0 + 16; j++)
                for (int d = d0; d < std::min(hd, d0 + 16); d++)
                    kt[size_t(d) * size_t(ld) + size_t(j)] = j < n_kv ? k[size_t(j) * size_t(k_stride) + size_t(d)] : 0.0f;
}

}  // namespace vlm
