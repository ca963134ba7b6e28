// gemv_quant.cu: small-batch matrix product on block-quantized weights,
// y (n, m) = x (n, k) . w (m, k)^T [+ b], n <= 16 (decode steps, the one-row
// lm_head), w Q8 or Q4 in the layout of core/quant.h (quants plane, then one
// f16 scale per 32-weight block); x, y f32 views; b (1, m) any float dtype.
// Overwrites y. Computes exactly the product core/quant.h defines (what
// ref_matmul_quant runs): each x row cut into 32-wide blocks and rounded to
// int8 per block, then y = sum over blocks of float(isum) * (scale_w *
// scale_x), isum the exact integer dot of the block; only the order of the
// float additions differs from the reference.
// Two kernels, one op:
//  1. quantize_x: one warp per (x row, block), 256 threads = 8 blocks of x
//     per CUDA block, ceil(n * nb / 8) blocks. Lanes hold one value each;
//     amax by a shuffle max, then inv = 127 / amax and scale = amax / 127 in
//     float (IEEE division: no fast-math) and q = rne(x * inv), bit for bit
//     quantize_x_block. Writes the int8 blocks (n, nb*32), their scales and
//     their integer sums (Q4's offset correction) into `workspace`.
//  2. gemv: ceil(m / 8) blocks of 256 threads, one warp per output column (one
//     row of w) for all n rows, as gemv.cu. The product is bound by reading
//     w (m*k*8.5/8 bytes for Q8, 4.5/8 for Q4), so the warp reads its row in
//     coalesced 16-byte loads: Q8 one half block per lane (the two lanes of
//     a block add their integer half sums with one shuffle, so the float
//     term is one per block as in the reference); Q4 one whole block per lane
//     (16 bytes, nibble i and i + 16 in byte i). Integer dots by __dp4a (4
//     int8 products per instruction). Q4's nibbles are u = q + 8, so the
//     block dot is dp4a(u, x) - 8 * sum(x), with sum(x) from kernel 1. The x
//     blocks (n * k bytes) are re-read by all 8 warps from L1/L2. n rows are a
//     template bucket (1, 2, 4, 8, 16) so the accumulators stay in registers.
// When w's base is not 16-byte aligned (never for adopt_weight's
// allocations) its quants are read byte by byte instead.
#include "kernel_common.cuh"
#include "core/quant.h"

namespace vlm::kern {
namespace {

constexpr int kWarps = 8, kThreads = kWarps * 32;
constexpr int kBlock = 32;
static_assert(kBlock == kQuantBlock, "core/quant.h's block size");

struct XBlocks {
    int8_t *q;    // (n, nb * 32)
    float  *scale;  // (n, nb)
    int    *sum;    // (n, nb): sum of the block's int8 values
};

XBlocks x_blocks(void *workspace, int64_t n, int64_t nb)
{
    char *base = static_cast<char *>(workspace);
    const size_t q_bytes = size_t(n) * size_t(nb) * kBlock;
    return {reinterpret_cast<int8_t *>(base), reinterpret_cast<float *>(base + q_bytes),
            reinterpret_cast<int *>(base + q_bytes + size_t(n) * size_t(nb) * sizeof(float))};
}

__device__ inline int warp_sum_int(int v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__global__ void __launch_bounds__(kThreads) quantize_x_kernel(const float *x, int64_t sx, int64_t n, int64_t k,
                                                              int64_t nb, int8_t *xq, float *xs, int *xsum)
{
    const int lane = threadIdx.x & 31;
    const int64_t job = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);  // row * nb + block
    if (job >= n * nb) return;  // whole warp leaves together
    const int64_t t = job / nb, c = (job % nb) * kBlock + lane;
    const float v = c < k ? x[size_t(t) * size_t(sx) + size_t(c)] : 0.0f;
    const float amax = warp_max(fabsf(v));
    int q = 0;
    float scale = 0.0f;
    const float inv = 127.0f / amax;
    if (amax > 0.0f && inv <= 3.4028235e38f) {  // the same for every lane; tiny or NaN blocks are zero
        const float qv = v * inv;
        q = qv == qv ? __float2int_rn(qv) : 0;
        scale = amax / 127.0f;
    }
    xq[size_t(job) * kBlock + size_t(lane)] = int8_t(q);
    const int s = warp_sum_int(q);
    if (lane == 0) {
        xs[job] = scale;
        xsum[job] = s;
    }
}

// 16 bytes at p: one uint4 load when aligned, else byte by byte.
template <bool kAligned>
__device__ inline uint4 load16(const uint8_t *p)
{
    if constexpr (kAligned) {
        return *reinterpret_cast<const uint4 *>(p);
    } else {
        uint32_t w[4];
        for (int j = 0; j < 4; j++)
            w[j] = uint32_t(p[4 * j]) | uint32_t(p[4 * j + 1]) << 8 | uint32_t(p[4 * j + 2]) << 16 |
                   uint32_t(p[4 * j + 3]) << 24;
        return make_uint4(w[0], w[1], w[2], w[3]);
    }
}

__device__ inline int dp4a4(uint4 a, uint4 b, int c)
{
    c = __dp4a(int(a.x), int(b.x), c);
    c = __dp4a(int(a.y), int(b.y), c);
    c = __dp4a(int(a.z), int(b.z), c);
    return __dp4a(int(a.w), int(b.w), c);
}

template <int NB, bool kQ4, bool kAligned>
__global__ void __launch_bounds__(kThreads)
gemv_quant_kernel(const uint8_t *wq, const uint16_t *ws, int64_t nb, const int8_t *xq, const float *xs,
                  const int *xsum, const void *bias, DType bdt, float *y, int64_t sy, int n, int64_t m)
{
    const int lane = threadIdx.x & 31;
    const int64_t o = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
    if (o >= m) return;  // whole warp leaves together: no collective is split
    float acc[NB];
    for (int r = 0; r < NB; r++) acc[r] = 0.0f;
    const size_t x_row = size_t(nb) * kBlock;  // bytes between x rows of quants
    if constexpr (kQ4) {
        const uint8_t *wr = wq + size_t(o) * size_t(nb) * 16;
        const uint16_t *sr = ws + size_t(o) * size_t(nb);
        for (int64_t b = lane; b < nb; b += 32) {
            const uint4 u = load16<kAligned>(wr + size_t(b) * 16);
            const float sw = bits_f16_to_f32(sr[b]);
            // Low nibbles: weights 0..15 of the block; high nibbles: 16..31.
            const uint4 lo = make_uint4(u.x & 0x0f0f0f0fu, u.y & 0x0f0f0f0fu, u.z & 0x0f0f0f0fu, u.w & 0x0f0f0f0fu);
            const uint4 hi = make_uint4((u.x >> 4) & 0x0f0f0f0fu, (u.y >> 4) & 0x0f0f0f0fu,
                                        (u.z >> 4) & 0x0f0f0f0fu, (u.w >> 4) & 0x0f0f0f0fu);
            for (int r = 0; r < NB; r++) {
                if (r >= n) break;
                const int8_t *xb = xq + size_t(r) * x_row + size_t(b) * kBlock;
                const uint4 x0 = *reinterpret_cast<const uint4 *>(xb);
                const uint4 x1 = *reinterpret_cast<const uint4 *>(xb + 16);
                const size_t j = size_t(r) * size_t(nb) + size_t(b);
                const int isum = dp4a4(hi, x1, dp4a4(lo, x0, 0)) - 8 * xsum[j];
                acc[r] += float(isum) * (sw * xs[j]);
            }
        }
    } else {
        const uint8_t *wr = wq + size_t(o) * size_t(nb) * kBlock;
        const uint16_t *sr = ws + size_t(o) * size_t(nb);
        const int64_t halves = 2 * nb;
        // Every lane runs every iteration (the shuffle needs the pair); a
        // block's two halves are lanes 2j, 2j + 1 of the same iteration.
        for (int64_t base = 0; base < halves; base += 32) {
            const int64_t h = base + lane, b = h >> 1;
            const bool valid = h < halves;
            const uint4 wv = valid ? load16<kAligned>(wr + size_t(h) * 16) : make_uint4(0, 0, 0, 0);
            const float sw = valid ? bits_f16_to_f32(sr[b]) : 0.0f;
            for (int r = 0; r < NB; r++) {
                if (r >= n) break;  // uniform across the warp
                const uint4 xv = valid ? *reinterpret_cast<const uint4 *>(xq + size_t(r) * x_row + size_t(h) * 16)
                                       : make_uint4(0, 0, 0, 0);
                int isum = dp4a4(wv, xv, 0);
                isum += __shfl_xor_sync(0xffffffffu, isum, 1);  // the whole block's integer dot
                if (valid && !(lane & 1)) acc[r] += float(isum) * (sw * xs[size_t(r) * size_t(nb) + size_t(b)]);
            }
        }
    }
    const float bv = bias ? load_elem(bias, bdt, size_t(o)) : 0.0f;
    for (int r = 0; r < NB; r++) {
        if (r >= n) break;  // uniform across the warp
        const float s = warp_sum(acc[r]);
        if (lane == 0) y[size_t(r) * size_t(sy) + size_t(o)] = s + bv;
    }
}

template <int NB, bool kQ4, bool kAligned>
void launch_bucket(const GemvQuantParams &p, const XBlocks &xb, int64_t nb, cudaStream_t s)
{
    VLM_LAUNCH((gemv_quant_kernel<NB, kQ4, kAligned>), dim3(ceil_div(p.w.rows, kWarps)), dim3(kThreads), 0, s)(
        static_cast<const uint8_t *>(p.w.data), static_cast<const uint16_t *>(p.w.scales), nb, xb.q, xb.scale,
        xb.sum, p.bias.data, p.bias.dtype, static_cast<float *>(p.y.data), p.y.stride, int(p.x.rows), p.w.rows);
}

template <int NB>
void launch_rows(const GemvQuantParams &p, const XBlocks &xb, int64_t nb, cudaStream_t s)
{
    const bool q4 = p.w.dtype == DType::Q4, aligned = is_aligned16(p.w.data);
    if (q4 && aligned) launch_bucket<NB, true, true>(p, xb, nb, s);
    else if (q4) launch_bucket<NB, true, false>(p, xb, nb, s);
    else if (aligned) launch_bucket<NB, false, true>(p, xb, nb, s);
    else launch_bucket<NB, false, false>(p, xb, nb, s);
}

}  // namespace

size_t gemv_quant_workspace_bytes(int64_t n, int64_t k)
{
    // int8 blocks, then a float scale and an int sum per block.
    return size_t(n) * size_t(quant_blocks(k)) * (kBlock + sizeof(float) + sizeof(int));
}

bool launch_gemv_quant(const GemvQuantParams &p, cudaStream_t s, std::string &err)
{
    if (p.x.rows == 0 || p.w.rows == 0) return true;
    const int64_t n = p.x.rows, nb = quant_blocks(p.x.cols);
    const XBlocks xb = x_blocks(p.workspace, n, nb);
    if (nb > 0) {  // k = 0: no blocks, y = bias (or 0)
        VLM_LAUNCH(quantize_x_kernel, dim3(ceil_div(n * nb, kWarps)), dim3(kThreads), 0, s)(
            static_cast<const float *>(p.x.data), p.x.stride, n, p.x.cols, nb, xb.q, xb.scale, xb.sum);
        if (!launch_ok("gemv_quant (quantize x)", err)) return false;
    }
    if (n == 1) launch_rows<1>(p, xb, nb, s);
    else if (n == 2) launch_rows<2>(p, xb, nb, s);
    else if (n <= 4) launch_rows<4>(p, xb, nb, s);
    else if (n <= 8) launch_rows<8>(p, xb, nb, s);
    else launch_rows<16>(p, xb, nb, s);
    return launch_ok("gemv_quant", err);
}

}  // namespace vlm::kern
