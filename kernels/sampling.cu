// sampling.cu: a device-side sampler, one token per row of logits.
// Shapes: logits (n_rows, vocab) f32 (vocab 151552), out (n_rows) int32.
// temperature <= 0: greedy argmax (lowest id on ties). Otherwise z = logit /
// temperature, then top_k (keep the k largest), then top_p (keep the smallest
// set of largest tokens whose probability mass, renormalised over the top-k
// set, reaches top_p), then draw from the kept mass with a counter-based
// generator keyed by (seed, row): splitmix64, 53-bit uniform.
// Grid: one block of 256 threads per row. Thresholds are found without
// sorting: the k-th largest value by a 32-step bitwise search over the
// order-preserving integer key of the float (each step counts keys >= the
// candidate), the top-p cut by the same search on the kept mass. Every sum
// and count is a per-thread sum over a contiguous chunk followed by a serial
// sum of the 256 partials by thread 0, so the result is deterministic and the
// CPU reference below reproduces it bit for bit (same libm under the
// emulator). Ties at a threshold are all kept. Cost per sampled row: ~70
// passes over the row (mostly L2 hits), ~2-40 us on an H100, negligible next
// to a decode step.
// The host Sampler (model_runtime/sampler.cpp, xoshiro256**) remains the
// reference for what the service returns; this sampler draws different
// random numbers for the same seed.
#include "kernel_common.cuh"

#include <cmath>
#include <vector>

namespace vlm::kern {
namespace {

constexpr int kThreads = kSampleThreads;

__host__ __device__ inline uint32_t order_key(float f)
{
    uint32_t b = f32_as_u32(f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__host__ __device__ inline uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

__host__ __device__ inline float row_uniform(uint64_t seed, int64_t row)
{
    uint64_t r = splitmix64(seed ^ splitmix64(uint64_t(row) + 1));
    return float(double(r >> 11) * (1.0 / 9007199254740992.0));
}

__device__ float serial_total(float mine, float *part)
{
    __syncthreads();
    part[threadIdx.x] = mine;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.0f;
        for (int t = 0; t < kThreads; t++) s += part[t];
        part[kThreads] = s;
    }
    __syncthreads();
    return part[kThreads];
}

__global__ void __launch_bounds__(kThreads)
sample_kernel(const float *logits, int64_t stride, int64_t vocab, int32_t *out, float temperature,
              int top_k, float top_p, uint64_t seed)
{
    __shared__ float part[kThreads + 1];
    __shared__ int64_t part_idx[kThreads];
    const int64_t row = blockIdx.x;
    const float *x = logits + size_t(row) * size_t(stride);
    const int64_t chunk = (vocab + kThreads - 1) / kThreads;
    const int64_t c0 = min64(vocab, chunk * int64_t(threadIdx.x)), c1 = min64(vocab, c0 + chunk);

    if (temperature <= 0.0f) {
        int64_t best = -1;
        float bv = 0.0f;
        for (int64_t c = c0; c < c1; c++)
            if (best < 0 || x[c] > bv) { bv = x[c]; best = c; }
        part[threadIdx.x] = bv;
        part_idx[threadIdx.x] = best;
        __syncthreads();
        if (threadIdx.x == 0) {
            int64_t b = -1;
            float v = 0.0f;
            for (int t = 0; t < kThreads; t++)
                if (part_idx[t] >= 0 && (b < 0 || part[t] > v)) { v = part[t]; b = part_idx[t]; }
            out[row] = int32_t(b);
        }
        return;
    }
    // max of z (exact in any order)
    float mx = -INFINITY;
    for (int64_t c = c0; c < c1; c++) mx = fmaxf(mx, x[c] / temperature);
    __syncthreads();
    part[threadIdx.x] = mx;
    __syncthreads();
    if (threadIdx.x == 0) {
        float m = -INFINITY;
        for (int t = 0; t < kThreads; t++) m = fmaxf(m, part[t]);
        part[kThreads] = m;
    }
    __syncthreads();
    mx = part[kThreads];

    uint32_t key_min = 0;
    if (top_k > 0 && top_k < vocab) {
        for (int bit = 31; bit >= 0; bit--) {
            const uint32_t cand = key_min | (1u << bit);
            float cnt = 0.0f;  // counts < 2^24 are exact in float
            for (int64_t c = c0; c < c1; c++) cnt += order_key(x[c] / temperature) >= cand ? 1.0f : 0.0f;
            if (serial_total(cnt, part) >= float(top_k)) key_min = cand;
        }
    }
    auto kept_mass = [&](uint32_t kmin) {
        float s = 0.0f;
        for (int64_t c = c0; c < c1; c++) {
            const float z = x[c] / temperature;
            if (order_key(z) >= kmin) s += expf(z - mx);
        }
        return serial_total(s, part);
    };
    if (top_p < 1.0f) {
        const float need = top_p * kept_mass(key_min);
        uint32_t t = key_min;
        for (int bit = 31; bit >= 0; bit--) {
            const uint32_t cand = t | (1u << bit);
            if (cand < key_min) continue;
            if (kept_mass(cand) >= need) t = cand;
        }
        key_min = t;
    }
    const float total = kept_mass(key_min);
    // The chunk sums again, kept per thread, for the draw.
    float mine = 0.0f;
    for (int64_t c = c0; c < c1; c++) {
        const float z = x[c] / temperature;
        if (order_key(z) >= key_min) mine += expf(z - mx);
    }
    __syncthreads();
    part[threadIdx.x] = mine;
    __syncthreads();
    if (threadIdx.x == 0) {
        const float u = row_uniform(seed, row) * total;
        float before = 0.0f;
        int64_t pick = -1;
        for (int t = 0; t < kThreads && pick < 0; t++) {
            const int64_t t0 = min64(vocab, chunk * t), t1 = min64(vocab, t0 + chunk);
            if (before + part[t] <= u) {
                before += part[t];
                continue;
            }
            float run = before;
            for (int64_t c = t0; c < t1; c++) {
                const float z = x[c] / temperature;
                if (order_key(z) < key_min) continue;
                run += expf(z - mx);
                if (run > u) { pick = c; break; }
            }
            before += part[t];
        }
        if (pick < 0)  // u rounded up to the total: the last kept token
            for (int64_t c = vocab - 1; c >= 0 && pick < 0; c--)
                if (order_key(x[c] / temperature) >= key_min) pick = c;
        out[row] = int32_t(pick);
    }
}

}  // namespace

bool launch_sample(const SampleParams &p, cudaStream_t s, std::string &err)
{
    if (!check_f32("sample", "logits", p.logits, err)) return false;
    if (p.logits.cols <= 0 || !(p.top_p > 0.0f && p.top_p <= 1.0f) || p.top_k < 0 ||
        !(p.temperature >= 0.0f) || p.logits.rows > 0x7fffffff) {
        err = "sample: need vocab > 0, top_p in (0, 1], top_k >= 0, temperature >= 0";
        return false;
    }
    if (p.logits.rows == 0) return true;
    VLM_LAUNCH(sample_kernel, dim3(unsigned(p.logits.rows)), dim3(kThreads), 0, s)(
        static_cast<const float *>(p.logits.data), p.logits.stride, p.logits.cols, p.out, p.temperature,
        p.top_k, p.top_p, p.seed);
    return launch_ok("sample", err);
}

// The kernel's algorithm on the host, chunk by chunk in the same order.
void sample_ref(const SampleParams &p)
{
    const int64_t vocab = p.logits.cols;
    const int64_t chunk = (vocab + kThreads - 1) / kThreads;
    for (int64_t row = 0; row < p.logits.rows; row++) {
        const float *x = static_cast<const float *>(p.logits.data) + size_t(row) * size_t(p.logits.stride);
        auto chunk_range = [&](int t) {
            int64_t c0 = std::min(vocab, chunk * t);
            return std::pair<int64_t, int64_t>(c0, std::min(vocab, c0 + chunk));
        };
        if (p.temperature <= 0.0f) {
            int64_t b = 0;
            for (int64_t c = 1; c < vocab; c++)
                if (x[c] > x[b]) b = c;
            p.out[row] = int32_t(b);
            continue;
        }
        const float temp = p.temperature;
        float mx = -INFINITY;
        for (int64_t c = 0; c < vocab; c++) mx = std::fmax(mx, x[c] / temp);
        auto serial = [&](auto per_elem) {
            float total = 0.0f;
            for (int t = 0; t < kThreads; t++) {
                auto [c0, c1] = chunk_range(t);
                float s = 0.0f;
                for (int64_t c = c0; c < c1; c++) s += per_elem(c);
                total += s;
            }
            return total;
        };
        uint32_t key_min = 0;
        if (p.top_k > 0 && p.top_k < vocab)
            for (int bit = 31; bit >= 0; bit--) {
                const uint32_t cand = key_min | (1u << bit);
                float cnt = serial([&](int64_t c) { return order_key(x[c] / temp) >= cand ? 1.0f : 0.0f; });
                if (cnt >= float(p.top_k)) key_min = cand;
            }
        auto kept_mass = [&](uint32_t kmin) {
            return serial([&](int64_t c) {
                float z = x[c] / temp;
                return order_key(z) >= kmin ? std::exp(z - mx) : 0.0f;
            });
        };
        if (p.top_p < 1.0f) {
            const float need = p.top_p * kept_mass(key_min);
            uint32_t t = key_min;
            for (int bit = 31; bit >= 0; bit--) {
                const uint32_t cand = t | (1u << bit);
                if (cand < key_min) continue;
                if (kept_mass(cand) >= need) t = cand;
            }
            key_min = t;
        }
        const float total = kept_mass(key_min);
        const float u = row_uniform(p.seed, row) * total;
        int64_t pick = -1;
        float before = 0.0f;
        for (int t = 0; t < kThreads && pick < 0; t++) {
            auto [c0, c1] = chunk_range(t);
            float part = 0.0f;
            for (int64_t c = c0; c < c1; c++) {
                float z = x[c] / temp;
                if (order_key(z) >= key_min) part += std::exp(z - mx);
            }
            if (before + part <= u) {
                before += part;
                continue;
            }
            float run = before;
            for (int64_t c = c0; c < c1; c++) {
                float z = x[c] / temp;
                if (order_key(z) < key_min) continue;
                run += std::exp(z - mx);
                if (run > u) { pick = c; break; }
            }
            before += part;
        }
        if (pick < 0)
            for (int64_t c = vocab - 1; c >= 0 && pick < 0; c--)
                if (order_key(x[c] / temp) >= key_min) pick = c;
        p.out[row] = int32_t(pick);
    }
}

}  // namespace vlm::kern
