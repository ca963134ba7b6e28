// attention_decode.cu: attention for a few query rows against a long KV
// cache (decode: one new token per sequence). Same contract and masks as
// attention_prefill.cu: q (n_q, n_head*D), k/v (n_kv, n_kv_head*D) f32 views,
// D <= 128, GQA, causal with kv_offset or per-row ranges. Overwrites out.
// Grid: (n_head, n_q) blocks of 128 threads (4 warps). Each warp walks keys
// warp, warp+4, ...: its lanes split the D dims (D/32 each), a shuffle sum
// gives the score, and the warp keeps its own online-softmax state (max m,
// sum l, D/32 output accumulators per lane) in registers. The 4 partial
// states are merged through shared memory at the end (static, 4*(D+2)
// floats). Every K/V row is read by whole warps in 128-byte segments; the
// 16 query heads of a GQA group re-read the same K/V from L2.
// Split-KV (flash-decoding): n_head * n_q blocks (32 at batch 1) would leave
// most of an H100's 132 SMs idle at long context, so when a workspace is
// given and there are enough keys, grid.z splits each row's key range into
// up to 32 chunks of >= 128 keys; each block writes its unnormalised partial
// (m, l, acc[D]) to the workspace and a second kernel, (n_head, n_q) blocks
// of 128 threads, merges the partials with the usual rescaling.
#include "kernel_common.cuh"

#include <cmath>

namespace vlm::kern {

namespace {

constexpr int kThreads = 128, kWarps = 4, kMaxPerLane = kAttentionMaxHeadDim / 32;
constexpr int kMaxSplit = 32, kMinKeysPerSplit = 128, kTargetBlocks = 264;

__global__ void __launch_bounds__(kThreads)
attention_decode_kernel(const float *q, int64_t sq, const float *k, int64_t sk, const float *v,
                        int64_t sv, float *out, int64_t so, int64_t n_kv, int D, int group,
                        float scale, bool causal, int64_t kv_offset, const int32_t *row_lo,
                        const int32_t *row_hi, float *partials)
{
    __shared__ float part_m[kWarps], part_l[kWarps];
    __shared__ float part_acc[kWarps][kAttentionMaxHeadDim];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int h = blockIdx.x, kh = h / group;
    const int64_t i = blockIdx.y;
    int64_t lo = 0, hi = n_kv;
    if (causal) hi = min64(n_kv, kv_offset + i + 1);
    else if (row_lo) { lo = row_lo[i]; hi = row_hi[i]; }
    if (gridDim.z > 1) {  // this block's share of the row's keys
        const int64_t chunk = (hi - lo + gridDim.z - 1) / gridDim.z;
        const int64_t a = lo + chunk * blockIdx.z;
        hi = min64(hi, a + chunk);
        lo = min64(a, hi);
    }

    float qv[kMaxPerLane], acc[kMaxPerLane];
    const float *qr = q + size_t(i) * size_t(sq) + size_t(h) * D;
    for (int u = 0; u < kMaxPerLane; u++) {
        const int d = lane + 32 * u;
        qv[u] = d < D ? qr[d] : 0.0f;
        acc[u] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = lo + warp; j < hi; j += kWarps) {
        const float *kr = k + size_t(j) * size_t(sk) + size_t(kh) * D;
        float part = 0.0f;
        for (int u = 0; u < kMaxPerLane; u++) {
            const int d = lane + 32 * u;
            if (d < D) part += qv[u] * kr[d];
        }
        const float s = warp_sum(part) * scale;
        const float m_new = fmaxf(m, s);
        const float alpha = expf(m - m_new);  // m = -inf on the first key: 0
        const float p = expf(s - m_new);
        l = l * alpha + p;
        const float *vr = v + size_t(j) * size_t(sv) + size_t(kh) * D;
        for (int u = 0; u < kMaxPerLane; u++) {
            const int d = lane + 32 * u;
            acc[u] = acc[u] * alpha + (d < D ? p * vr[d] : 0.0f);
        }
        m = m_new;
    }
    if (lane == 0) {
        part_m[warp] = m;
        part_l[warp] = l;
    }
    for (int u = 0; u < kMaxPerLane; u++) {
        const int d = lane + 32 * u;
        if (d < D) part_acc[warp][d] = acc[u];
    }
    __syncthreads();
    float m_all = -INFINITY;
    for (int w = 0; w < kWarps; w++) m_all = fmaxf(m_all, part_m[w]);
    float l_all = 0.0f, scale_w[kWarps];
    for (int w = 0; w < kWarps; w++) {
        scale_w[w] = part_m[w] == -INFINITY ? 0.0f : expf(part_m[w] - m_all);
        l_all += part_l[w] * scale_w[w];
    }
    if (gridDim.z > 1) {
        // Partial (m, l, acc[D]) of split z for (row i, head h).
        float *pp = partials + ((size_t(i) * gridDim.x + size_t(h)) * gridDim.z + blockIdx.z) * size_t(D + 2);
        if (threadIdx.x == 0) {
            pp[0] = m_all;
            pp[1] = l_all;
        }
        for (int d = threadIdx.x; d < D; d += kThreads) {
            float o = 0.0f;
            for (int w = 0; w < kWarps; w++) o += part_acc[w][d] * scale_w[w];
            pp[2 + d] = o;
        }
        return;
    }
    float *orow = out + size_t(i) * size_t(so) + size_t(h) * D;
    for (int d = threadIdx.x; d < D; d += kThreads) {
        float o = 0.0f;
        for (int w = 0; w < kWarps; w++) o += part_acc[w][d] * scale_w[w];
        orow[d] = l_all > 0.0f ? o / l_all : 0.0f;
    }
}

__global__ void __launch_bounds__(kThreads)
attention_decode_merge_kernel(const float *partials, int n_split, int D, float *out, int64_t so)
{
    const int h = blockIdx.x;
    const int64_t i = blockIdx.y;
    const float *pp = partials + (size_t(i) * gridDim.x + size_t(h)) * size_t(n_split) * size_t(D + 2);
    float m_all = -INFINITY;
    for (int z = 0; z < n_split; z++) m_all = fmaxf(m_all, pp[size_t(z) * (D + 2)]);
    float l_all = 0.0f;
    for (int z = 0; z < n_split; z++) {
        const float mz = pp[size_t(z) * (D + 2)];
        if (mz != -INFINITY) l_all += pp[size_t(z) * (D + 2) + 1] * expf(mz - m_all);
    }
    float *orow = out + size_t(i) * size_t(so) + size_t(h) * D;
    for (int d = threadIdx.x; d < D; d += kThreads) {
        float o = 0.0f;
        for (int z = 0; z < n_split; z++) {
            const float mz = pp[size_t(z) * (D + 2)];
            if (mz != -INFINITY) o += pp[size_t(z) * (D + 2) + 2 + d] * expf(mz - m_all);
        }
        orow[d] = l_all > 0.0f ? o / l_all : 0.0f;
    }
}

// Splits of each row's keys: enough blocks to fill the GPU, >= 128 keys each.
int split_count(const AttentionKernelParams &p)
{
    const int64_t blocks = int64_t(p.attn.n_head) * p.q.rows;
    int64_t by_keys = p.k.rows / kMinKeysPerSplit;
    int64_t by_blocks = (kTargetBlocks + blocks - 1) / blocks;
    return int(std::max<int64_t>(1, std::min<int64_t>({int64_t(kMaxSplit), by_keys, by_blocks})));
}

}  // namespace

size_t attention_decode_workspace_floats(const AttentionKernelParams &p)
{
    int n_split = split_count(p);
    if (n_split <= 1) return 0;
    return size_t(p.q.rows) * size_t(p.attn.n_head) * size_t(n_split) * size_t(p.attn.head_dim + 2);
}

bool launch_attention_decode(const AttentionKernelParams &p, cudaStream_t s, std::string &err)
{
    if (p.q.rows == 0) return true;
    const int n_split = p.workspace ? split_count(p) : 1;
    dim3 grid(unsigned(p.attn.n_head), unsigned(p.q.rows), unsigned(n_split));
    VLM_LAUNCH(attention_decode_kernel, grid, dim3(kThreads), 0, s)(
        static_cast<const float *>(p.q.data), p.q.stride, static_cast<const float *>(p.k.data), p.k.stride,
        static_cast<const float *>(p.v.data), p.v.stride, static_cast<float *>(p.out.data), p.out.stride,
        p.k.rows, p.attn.head_dim, p.attn.n_head / p.attn.n_kv_head, p.attn.scale, p.attn.causal,
        p.attn.kv_offset, p.attn.causal ? nullptr : p.row_lo, p.attn.causal ? nullptr : p.row_hi, p.workspace);
    if (n_split > 1) {
        if (!launch_ok("attention_decode", err)) return false;
        VLM_LAUNCH(attention_decode_merge_kernel, dim3(unsigned(p.attn.n_head), unsigned(p.q.rows)),
                   dim3(kThreads), 0, s)(p.workspace, n_split, p.attn.head_dim, static_cast<float *>(p.out.data),
                                         p.out.stride);
    }
    return launch_ok("attention_decode", err);
}

}  // namespace vlm::kern
