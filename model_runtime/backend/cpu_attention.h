// cpu_attention.h: the cpu backend's attention (softmax(q k^T * scale) v
// with GQA, causal or block-diagonal masks). Threaded over (head, block of
// queries); memory is O(n_kv) per thread, never n_q x n_kv.
#pragma once

#include "core/backend.h"
#include "backend/backend_cpu.h"
#include "backend/cpu_thread_pool.h"

#include <vector>

namespace vlm {

// Reusable buffers (grow only): per-thread scores, transposed keys.
struct CpuAttentionScratch {
    std::vector<std::vector<float>> per_thread;
    std::vector<float> keys_t;
};

// Queries per block of the AVX-512 path (one pool chunk = head x block).
constexpr int kAttnQueryBlock = 32;

// One head, up to kAttnQueryBlock consecutive queries, for the AVX-512 path.
struct AttnBlock {
    const float *q = nullptr;   // first query row of the block, this head
    int64_t q_stride = 0;
    const float *kt = nullptr;  // this kv head's keys transposed: head_dim rows of kt_ld
    int64_t kt_ld = 0;          // n_kv rounded up to 16 (zero padded)
    const float *v = nullptr;   // value row 0, this kv head
    int64_t v_stride = 0;
    float *out = nullptr;       // first output row of the block, this head
    int64_t out_stride = 0;
    int64_t n_kv = 0;
    int head_dim = 0;           // multiple of 16, <= 128
    float scale = 1.0f;
    int n_rows = 0;
    int64_t lo[kAttnQueryBlock];  // visible keys [lo, hi) per row
    int64_t hi[kAttnQueryBlock];
};

// One head of one query row for the AVX-512 path at small n_q.
struct AttnRow {
    const float *q = nullptr;    // this head's query (head_dim floats)
    const float *k = nullptr;    // key row 0 of this kv head
    int64_t k_stride = 0;
    const float *v = nullptr;    // value row 0 of this kv head
    int64_t v_stride = 0;
    float *out = nullptr;        // this head's output (head_dim floats)
    int64_t lo = 0, hi = 0;      // visible keys
    int head_dim = 0;            // multiple of 16, <= 128
    float scale = 1.0f;
};

// scores: n_kv floats (indexed by key).
void attention_row_avx512(const AttnRow &a, float *scores);

// scratch: kAttnQueryBlock * kt_ld + (kAttnQueryBlock + 1) * head_dim floats.
void attention_block_avx512(const AttnBlock &b, float *scratch);
// kt[d * ld + j] = k[j][d] for j < n_kv, 0 for n_kv <= j < ld.
void transpose_keys_avx512(const float *k, int64_t k_stride, int64_t n_kv, int hd, float *kt, int64_t ld);

void cpu_attention(CpuThreadPool &pool, CpuIsa isa, CpuAttentionScratch &scratch, const Tensor &q,
                   const Tensor &k, const Tensor &v, const AttentionParams &p, Tensor &out);

}  // namespace vlm
