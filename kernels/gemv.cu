// gemv.cu: small-batch matrix product y (n, m) = x (n, k) . w (m, k)^T [+ b],
// n <= 16 (decode steps, the one-row lm_head). x, y f32; w f32/bf16/f16; b
// (1, m) any float dtype. Overwrites y. Why not cuBLAS: cuBLAS needs both
// operands in one dtype, so bf16 weights would force rounding the activations
// to bf16; here the weights are widened in registers and the math stays fp32,
// matching the cpu backend's small-n path. At n <= 16 the product is bound by
// reading w (m*k*2 bytes for bf16) so a GEMV at HBM speed is the right shape.
// Grid: ceil(m / 8) blocks of 256 threads; each warp owns one output column
// (one row of w) for all n rows: lanes stride over k reading 8 weights (one
// uint4 for bf16/f16, two float4 for f32) and two float4 of each x row (x
// rows stay in L1/L2; they are reused by all 8 warps), accumulate n partial
// dots in registers, then reduce with shuffles. Row count is a template
// bucket (1, 2, 4, 8, 16) so the accumulators stay in registers. The scalar
// path covers k % 8 != 0 or unaligned rows.
#include "kernel_common.cuh"

namespace vlm::kern {
namespace {

constexpr int kWarps = 8;

template <int NB>
__global__ void __launch_bounds__(256) gemv_kernel(const float *x, int64_t sx, const void *w, DType wdt,
                                                   int64_t sw, const void *bias, DType bdt, float *y,
                                                   int64_t sy, int n, int64_t m, int64_t k, bool vec)
{
    const int lane = threadIdx.x & 31;
    const int64_t o = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
    if (o >= m) return;  // whole warp leaves together: no collective is split
    float acc[NB];
    for (int r = 0; r < NB; r++) acc[r] = 0.0f;
    if (vec) {
        for (int64_t c = lane; c < k / 8; c += 32) {
            float wv[8];
            if (wdt == DType::F32) {
                const float4 *wp = reinterpret_cast<const float4 *>(static_cast<const float *>(w) + size_t(o) * size_t(sw));
                float4 a = wp[2 * c], b = wp[2 * c + 1];
                wv[0] = a.x; wv[1] = a.y; wv[2] = a.z; wv[3] = a.w;
                wv[4] = b.x; wv[5] = b.y; wv[6] = b.z; wv[7] = b.w;
            } else {
                const uint4 *wp = reinterpret_cast<const uint4 *>(static_cast<const uint16_t *>(w) + size_t(o) * size_t(sw));
                uint4 q = wp[c];
                uint32_t words[4] = {q.x, q.y, q.z, q.w};
                for (int j = 0; j < 4; j++) {
                    uint16_t lo = uint16_t(words[j] & 0xffffu), hi = uint16_t(words[j] >> 16);
                    wv[2 * j] = wdt == DType::BF16 ? bits_bf16_to_f32(lo) : bits_f16_to_f32(lo);
                    wv[2 * j + 1] = wdt == DType::BF16 ? bits_bf16_to_f32(hi) : bits_f16_to_f32(hi);
                }
            }
            for (int r = 0; r < NB; r++) {
                if (r >= n) break;
                const float4 *xp = reinterpret_cast<const float4 *>(x + size_t(r) * size_t(sx));
                float4 a = xp[2 * c], b = xp[2 * c + 1];
                acc[r] += a.x * wv[0] + a.y * wv[1] + a.z * wv[2] + a.w * wv[3] + b.x * wv[4] +
                          b.y * wv[5] + b.z * wv[6] + b.w * wv[7];
            }
        }
    } else {
        for (int64_t c = lane; c < k; c += 32) {
            const float wv = load_elem(w, wdt, size_t(o) * size_t(sw) + size_t(c));
            for (int r = 0; r < NB; r++) {
                if (r >= n) break;
                acc[r] += x[size_t(r) * size_t(sx) + size_t(c)] * wv;
            }
        }
    }
    const float b = bias ? load_elem(bias, bdt, size_t(o)) : 0.0f;
    for (int r = 0; r < NB; r++) {
        if (r >= n) break;  // uniform across the warp
        const float s = warp_sum(acc[r]);
        if (lane == 0) y[size_t(r) * size_t(sy) + size_t(o)] = s + b;
    }
}

template <int NB>
void launch_bucket(const GemvParams &p, bool vec, cudaStream_t s)
{
    VLM_LAUNCH((gemv_kernel<NB>), dim3(ceil_div(p.w.rows, kWarps)), dim3(kWarps * 32), 0, s)(
        static_cast<const float *>(p.x.data), p.x.stride, p.w.data, p.w.dtype, p.w.stride,
        p.bias.data, p.bias.dtype, static_cast<float *>(p.y.data), p.y.stride, int(p.x.rows),
        p.w.rows, p.x.cols, vec);
}

}  // namespace

bool launch_gemv(const GemvParams &p, cudaStream_t s, std::string &err)
{
    if (p.x.rows == 0 || p.w.rows == 0) return true;
    const size_t wes = dtype_size(p.w.dtype);
    const bool vec = p.x.cols % 8 == 0 && rows_are_float4(p.x) && is_aligned16(p.w.data) &&
                     (size_t(p.w.stride) * wes) % 16 == 0;
    const int64_t n = p.x.rows;
    if (n == 1) launch_bucket<1>(p, vec, s);
    else if (n == 2) launch_bucket<2>(p, vec, s);
    else if (n <= 4) launch_bucket<4>(p, vec, s);
    else if (n <= 8) launch_bucket<8>(p, vec, s);
    else launch_bucket<16>(p, vec, s);
    return launch_ok("gemv", err);
}

}  // namespace vlm::kern
