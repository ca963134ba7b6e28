// cpu_attention.cpp: see cpu_attention.h. Picks the path: AVX-512 blocked
// (n_q >= 8) or per-row (decode) kernels when head_dim is a multiple of 16
// up to 128, else the portable loop here. All paths: scores in float, scaled
// after the dot product, softmax in float with max subtraction and
// normalisation before P.V (torch eager, softmax(dtype=float32)).
#include "backend/cpu_attention.h"

#include <algorithm>
#include <cmath>

namespace vlm {

static float dot_lanes(const float *a, const float *b, int n)
{
    float lane[16] = {};
    int d = 0;
    for (; d + 16 <= n; d += 16)
        for (int i = 0; i < 16; i++) lane[i] += a[d + i] * b[d + i];
    float s = 0.0f;
    for (; d < n; d++) s += a[d] * b[d];
    for (int i = 0; i < 16; i++) s += lane[i];
    return s;
}

// Visible keys [lo, hi) of query i.
static void visible_keys(const AttentionParams &p, int64_t n_q, int64_t n_kv, int64_t i, int64_t &lo, int64_t &hi)
{
    lo = 0;
    hi = n_kv;
    if (p.causal) {
        hi = std::min<int64_t>(n_kv, p.kv_offset + i + 1);
    } else if (p.n_segments > 0) {
        int64_t start = 0;
        for (int s = 0; s < p.n_segments; s++) {
            if (i < start + p.segments[s]) {
                lo = start;
                hi = start + p.segments[s];
                return;
            }
            start += p.segments[s];
        }
    }
}

// AVX-512 path: keys transposed once per kv head, then (head, block of
// kAttnQueryBlock queries) chunks.
static void attention_blocked(CpuThreadPool &pool, CpuAttentionScratch &scratch, const Tensor &q, const Tensor &k,
                              const Tensor &v, const AttentionParams &p, Tensor &out)
{
    const int64_t n_q = q.rows, n_kv = k.rows;
    const int hd = p.head_dim;
    const int group = p.n_head / p.n_kv_head;
    const int64_t ld = (n_kv + 15) / 16 * 16;
    const size_t per_head = size_t(hd) * size_t(ld);
    if (scratch.keys_t.size() < per_head * size_t(p.n_kv_head)) scratch.keys_t.resize(per_head * size_t(p.n_kv_head));
    const size_t need = size_t(kAttnQueryBlock) * size_t(ld) + size_t(kAttnQueryBlock + 1) * size_t(hd);
    scratch.per_thread.resize(size_t(pool.size()));
    for (auto &buf : scratch.per_thread)
        if (buf.size() < need) buf.resize(need);
    const float *kd = static_cast<const float *>(k.data);
    float *kt = scratch.keys_t.data();
    pool.for_each(p.n_kv_head, [&](int64_t kh, int) {
        transpose_keys_avx512(kd + size_t(kh) * size_t(hd), k.stride, n_kv, hd, kt + size_t(kh) * per_head, ld);
    });
    const int64_t q_blocks = (n_q + kAttnQueryBlock - 1) / kAttnQueryBlock;
    // Causal blocks late in the sequence cost most: hand them out first.
    pool.for_each(int64_t(p.n_head) * q_blocks, [&](int64_t chunk, int thread) {
        const int64_t qb = q_blocks - 1 - chunk / p.n_head;
        const int h = int(chunk % p.n_head);
        const int kh = h / group;
        AttnBlock b;
        const int64_t i0 = qb * kAttnQueryBlock;
        b.n_rows = int(std::min<int64_t>(kAttnQueryBlock, n_q - i0));
        b.q = static_cast<const float *>(q.data) + size_t(i0) * size_t(q.stride) + size_t(h) * size_t(hd);
        b.q_stride = q.stride;
        b.kt = kt + size_t(kh) * per_head;
        b.kt_ld = ld;
        b.v = static_cast<const float *>(v.data) + size_t(kh) * size_t(hd);
        b.v_stride = v.stride;
        b.out = static_cast<float *>(out.data) + size_t(i0) * size_t(out.stride) + size_t(h) * size_t(hd);
        b.out_stride = out.stride;
        b.n_kv = n_kv;
        b.head_dim = hd;
        b.scale = p.scale;
        for (int i = 0; i < b.n_rows; i++) visible_keys(p, n_q, n_kv, i0 + i, b.lo[i], b.hi[i]);
        attention_block_avx512(b, scratch.per_thread[size_t(thread)].data());
    });
}

void cpu_attention(CpuThreadPool &pool, CpuIsa isa, CpuAttentionScratch &scratch, const Tensor &q,
                   const Tensor &k, const Tensor &v, const AttentionParams &p, Tensor &out)
{
    const int64_t n_q = q.rows, n_kv = k.rows;
    const int hd = p.head_dim;
    const int group = p.n_head / p.n_kv_head;
    if (n_q == 0) return;
    const bool avx512 = isa == CpuIsa::Avx512 && hd % 16 == 0 && hd <= 128;
    if (avx512 && n_q >= 8) {
        attention_blocked(pool, scratch, q, k, v, p, out);
        return;
    }
    // Per thread: scores (n_kv) + output accumulator (head_dim).
    scratch.per_thread.resize(size_t(pool.size()));
    for (auto &buf : scratch.per_thread)
        if (buf.size() < size_t(n_kv) + size_t(hd)) buf.resize(size_t(n_kv) + size_t(hd));

    constexpr int64_t kQueryBlock = 8;
    const int64_t q_blocks = (n_q + kQueryBlock - 1) / kQueryBlock;
    const float *qd = static_cast<const float *>(q.data);
    const float *kd = static_cast<const float *>(k.data);
    const float *vd = static_cast<const float *>(v.data);
    float *od = static_cast<float *>(out.data);

    pool.for_each(int64_t(p.n_head) * q_blocks, [&](int64_t chunk, int thread) {
        const int h = int(chunk / q_blocks);
        const int kh = h / group;
        const int64_t i0 = (chunk % q_blocks) * kQueryBlock;
        const int64_t i1 = std::min(n_q, i0 + kQueryBlock);
        float *scores = scratch.per_thread[size_t(thread)].data();
        float *acc = scores + n_kv;
        // Segment (block-diagonal) bounds of the first query of the block;
        // advanced as queries cross segment ends.
        int64_t seg_start = 0, seg_end = n_kv;
        int seg = 0;
        if (!p.causal && p.n_segments > 0) {
            seg_end = p.segments[0];
            while (i0 >= seg_end && seg + 1 < p.n_segments) {
                seg_start = seg_end;
                seg_end += p.segments[++seg];
            }
        }
        if (avx512) {
            for (int64_t i = i0; i < i1; i++) {
                AttnRow a;
                a.q = qd + size_t(i) * size_t(q.stride) + size_t(h) * size_t(hd);
                a.k = kd + size_t(kh) * size_t(hd);
                a.k_stride = k.stride;
                a.v = vd + size_t(kh) * size_t(hd);
                a.v_stride = v.stride;
                a.out = od + size_t(i) * size_t(out.stride) + size_t(h) * size_t(hd);
                visible_keys(p, n_q, n_kv, i, a.lo, a.hi);
                a.head_dim = hd;
                a.scale = p.scale;
                attention_row_avx512(a, scores);
            }
            return;
        }
        for (int64_t i = i0; i < i1; i++) {
            int64_t lo = 0, hi = n_kv;
            if (p.causal) {
                hi = std::min<int64_t>(n_kv, p.kv_offset + i + 1);
            } else if (p.n_segments > 0) {
                while (i >= seg_end && seg + 1 < p.n_segments) {
                    seg_start = seg_end;
                    seg_end += p.segments[++seg];
                }
                lo = seg_start;
                hi = seg_end;
            }
            const float *qr = qd + size_t(i) * size_t(q.stride) + size_t(h) * size_t(hd);
            float mx = -INFINITY;
            for (int64_t j = lo; j < hi; j++) {
                const float *kr = kd + size_t(j) * size_t(k.stride) + size_t(kh) * size_t(hd);
                float s = dot_lanes(qr, kr, hd) * p.scale;
                scores[j] = s;
                mx = std::max(mx, s);
            }
            float sum = 0.0f;
            for (int64_t j = lo; j < hi; j++) {
                float e = std::exp(scores[j] - mx);
                scores[j] = e;
                sum += e;
            }
            const float inv = 1.0f / sum;
            for (int d = 0; d < hd; d++) acc[d] = 0.0f;
            for (int64_t j = lo; j < hi; j++) {
                const float pj = scores[j] * inv;
                const float *vr = vd + size_t(j) * size_t(v.stride) + size_t(kh) * size_t(hd);
                for (int d = 0; d < hd; d++) acc[d] += pj * vr[d];
            }
            float *orow = od + size_t(i) * size_t(out.stride) + size_t(h) * size_t(hd);
            for (int d = 0; d < hd; d++) orow[d] = acc[d];
        }
    });
}

}  // namespace vlm
