// attention_prefill.cu: tiled attention with an online softmax (the flash-
// attention scheme): out = softmax(q k^T * scale + mask) v, never holding
// more than a 16 x 32 tile of scores.
// Shapes: q (n_q, n_head*D), k and v (n_kv, n_kv_head*D), out (n_q, n_head*D),
// all f32 with any row strides (views of the fused qkv projection or the KV
// cache). D <= 128 (128 for both GLM-4.6V towers). GQA: query head h reads kv
// head h / (n_head / n_kv_head). Masks: causal (query i sees keys [0,
// kv_offset + i]), per-row ranges row_lo/row_hi (vision: one block-diagonal
// segment per image), or none. Overwrites out.
// Grid: (ceil(n_q / 16), n_head) blocks of 128 threads (4 warps).
// Shared memory (dynamic): the 16 x D query tile, a 32 x (D+1) key tile (the
// +1 pad keeps the score loop free of bank conflicts), a 32 x D value tile,
// the 16 x 32 score/probability tile and per-row m, l, alpha: 43.5 KiB at
// D = 128, under the 48 KiB every arch gives without opt-in.
// Per key tile: 128 threads compute the 512 scores (4 each); warp w owns
// query rows w, w+4, .. and, with lane = key, does the row max, the rescale
// factor and the row sum by shuffles; then each thread updates its
// ceil(16*D/128) output accumulators (registers) with p . v. Key tiles outside
// the block's visible range are skipped (causal: about half).
// fp32 CUDA-core math: activations are f32 in this runtime; a bf16
// tensor-core (mma) variant is the next step for speed (see README.md).
#include "kernel_common.cuh"

#include <algorithm>
#include <cmath>

namespace vlm::kern {
namespace {

constexpr int kBQ = 16, kBK = 32, kThreads = 128;
constexpr int kMaxAcc = kBQ * kAttentionMaxHeadDim / kThreads;  // 16

struct RowRange {
    int64_t lo, hi;
};

__device__ inline RowRange visible_keys(int64_t i, int64_t n_kv, bool causal, int64_t kv_offset,
                                        const int32_t *row_lo, const int32_t *row_hi)
{
    if (causal) return {0, min64(n_kv, kv_offset + i + 1)};
    if (row_lo) return {row_lo[i], row_hi[i]};
    return {0, n_kv};
}

__global__ void __launch_bounds__(kThreads)
attention_prefill_kernel(const float *q, int64_t sq, const float *k, int64_t sk, const float *v,
                         int64_t sv, float *out, int64_t so, int64_t n_q, int64_t n_kv, int D,
                         int group, float scale, bool causal, int64_t kv_offset,
                         const int32_t *row_lo, const int32_t *row_hi)
{
    VLM_DYNAMIC_SHARED(float, smem);
    float *Qs = smem;                    // [kBQ][D]
    float *Ks = Qs + kBQ * D;            // [kBK][D + 1]
    float *Vs = Ks + kBK * (D + 1);      // [kBK][D]
    float *Ps = Vs + kBK * D;            // [kBQ][kBK]
    float *m_row = Ps + kBQ * kBK;       // [kBQ]
    float *l_row = m_row + kBQ;          // [kBQ]
    float *alpha_row = l_row + kBQ;      // [kBQ]

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int h = blockIdx.y, kh = h / group;
    const int64_t q0 = int64_t(blockIdx.x) * kBQ;
    const int rows_here = n_q - q0 < kBQ ? int(n_q - q0) : kBQ;

    for (int e = tid; e < kBQ * D; e += kThreads) {
        const int i = e / D, d = e % D;
        Qs[e] = i < rows_here ? q[size_t(q0 + i) * size_t(sq) + size_t(h) * D + d] : 0.0f;
    }
    if (tid < kBQ) {
        m_row[tid] = -INFINITY;
        l_row[tid] = 0.0f;
    }
    // Union of the visible key ranges of this block's rows.
    int64_t k_begin = n_kv, k_end = 0;
    for (int i = 0; i < rows_here; i++) {
        RowRange r = visible_keys(q0 + i, n_kv, causal, kv_offset, row_lo, row_hi);
        if (r.lo < r.hi) {
            k_begin = min64(k_begin, r.lo);
            k_end = max64(k_end, r.hi);
        }
    }
    // Each lane's visible range for the rows its warp handles (lane = key).
    RowRange my_range[kBQ / 4];
    for (int t = 0; t < kBQ / 4; t++) {
        const int i = warp + 4 * t;
        my_range[t] = i < rows_here ? visible_keys(q0 + i, n_kv, causal, kv_offset, row_lo, row_hi)
                                    : RowRange{0, 0};
    }
    float acc[kMaxAcc];
    for (int t = 0; t < kMaxAcc; t++) acc[t] = 0.0f;
    const int n_acc = (kBQ * D + kThreads - 1) / kThreads;

    for (int64_t j0 = k_begin - k_begin % kBK; j0 < k_end; j0 += kBK) {
        __syncthreads();  // previous tile fully consumed
        for (int e = tid; e < kBK * D; e += kThreads) {
            const int j = e / D, d = e % D;
            const bool in = j0 + j < n_kv;
            Ks[j * (D + 1) + d] = in ? k[size_t(j0 + j) * size_t(sk) + size_t(kh) * D + d] : 0.0f;
            Vs[j * D + d] = in ? v[size_t(j0 + j) * size_t(sv) + size_t(kh) * D + d] : 0.0f;
        }
        __syncthreads();
        for (int e = tid; e < kBQ * kBK; e += kThreads) {
            const int i = e / kBK, j = e % kBK;
            const float *qr = Qs + i * D;
            const float *kr = Ks + j * (D + 1);
            float dot = 0.0f;
            for (int d = 0; d < D; d++) dot += qr[d] * kr[d];
            Ps[e] = dot * scale;
        }
        __syncthreads();
        for (int t = 0; t < kBQ / 4; t++) {
            const int i = warp + 4 * t;
            const int64_t j = j0 + lane;
            const bool visible = j >= my_range[t].lo && j < my_range[t].hi;
            const float s = visible ? Ps[i * kBK + lane] : -INFINITY;
            const float m_old = m_row[i];
            const float m_new = fmaxf(m_old, warp_max(s));
            const float p = m_new == -INFINITY ? 0.0f : expf(s - m_new);
            const float sum = warp_sum(p);
            Ps[i * kBK + lane] = p;
            if (lane == 0) {
                const float alpha = m_new == -INFINITY ? 1.0f : expf(m_old - m_new);
                alpha_row[i] = alpha;
                l_row[i] = l_row[i] * alpha + sum;
                m_row[i] = m_new;
            }
        }
        __syncthreads();
        for (int t = 0; t < n_acc; t++) {
            const int e = tid + kThreads * t;
            if (e >= kBQ * D) break;
            const int i = e / D, d = e % D;
            float a = acc[t] * alpha_row[i];
            const float *pr = Ps + i * kBK;
            for (int j = 0; j < kBK; j++) a += pr[j] * Vs[j * D + d];
            acc[t] = a;
        }
    }
    __syncthreads();
    for (int t = 0; t < n_acc; t++) {
        const int e = tid + kThreads * t;
        if (e >= kBQ * D) break;
        const int i = e / D, d = e % D;
        if (i < rows_here)
            out[size_t(q0 + i) * size_t(so) + size_t(h) * D + d] = l_row[i] > 0.0f ? acc[t] / l_row[i] : 0.0f;
    }
}

}  // namespace

bool launch_attention_prefill(const AttentionKernelParams &p, cudaStream_t s, std::string &err)
{
    if (p.q.rows == 0) return true;
    const int D = p.attn.head_dim;
    const size_t smem = (size_t(kBQ) * D + size_t(kBK) * (D + 1) + size_t(kBK) * D + kBQ * kBK + 3 * kBQ) *
                        sizeof(float);
    dim3 grid(ceil_div(p.q.rows, kBQ), unsigned(p.attn.n_head));
    VLM_LAUNCH(attention_prefill_kernel, grid, dim3(kThreads), smem, s)(
        static_cast<const float *>(p.q.data), p.q.stride, static_cast<const float *>(p.k.data), p.k.stride,
        static_cast<const float *>(p.v.data), p.v.stride, static_cast<float *>(p.out.data), p.out.stride,
        p.q.rows, p.k.rows, D, p.attn.n_head / p.attn.n_kv_head, p.attn.scale,
        p.attn.causal, p.attn.kv_offset, p.attn.causal ? nullptr : p.row_lo,
        p.attn.causal ? nullptr : p.row_hi);
    return launch_ok("attention_prefill", err);
}

}  // namespace vlm::kern
