// dequant_quant.cu: rows [r0, r0 + rows) of a Q8/Q4 weight (core/quant.h
// layout) to bf16: dst (rows, w.stride) contiguous, element = bf16(f16 scale
// * q) (the product is exact in f32, then rounded to nearest even; bf16
// keeps 8 bits, the product needs up to 18, so this rounds w by up to 2^-9
// relative), the zero padding of the last block included. Overwrites dst.
// Used by the cuBLAS path of matmul for n > 16 rows (prefill): cuBLAS has
// no block-scaled int8/int4 GEMM, so w is dequantized into a scratch buffer
// that the backend reuses (grows only), one chunk of rows at a time, and
// cublasGemmEx runs bf16 x bf16 with f32 accumulation, x rounded to bf16 by
// convert.cu. That path's numbers therefore differ from ref_matmul_quant's
// (which rounds x to int8 per block): the op table holds it to the product
// of bf16(x) and bf16(dequantized w) instead (backend_cuda.cpp,
// matmul_rounds_x). A persistent bf16 copy of every weight would undo the
// memory saving; per call this costs one read of the quants and one bf16
// write + read of the chunk, small beside the GEMM at prefill sizes.
// Grid: one thread per 8 consecutive weights of a block (4 per block),
// grid-stride over <= 65535 blocks of 256 threads. A thread reads 8 bytes of
// Q8 quants or 8 bytes of Q4 nibbles (one uint2 when aligned) and its
// block's scale, and writes one 16-byte uint4 of bf16; consecutive threads
// touch consecutive memory on both sides.
#include "kernel_common.cuh"
#include "core/quant.h"

namespace vlm::kern {
namespace {

constexpr int kThreads = 256;
constexpr int kBlock = 32;
static_assert(kBlock == kQuantBlock, "core/quant.h's block size");

template <bool kAligned>
__device__ inline uint2 load8(const uint8_t *p)
{
    if constexpr (kAligned) {
        return *reinterpret_cast<const uint2 *>(p);
    } else {
        uint32_t w[2];
        for (int j = 0; j < 2; j++)
            w[j] = uint32_t(p[4 * j]) | uint32_t(p[4 * j + 1]) << 8 | uint32_t(p[4 * j + 2]) << 16 |
                   uint32_t(p[4 * j + 3]) << 24;
        return make_uint2(w[0], w[1]);
    }
}

template <bool kQ4, bool kAligned>
__global__ void __launch_bounds__(kThreads) dequant_kernel(const uint8_t *wq, const uint16_t *ws, int64_t nb,
                                                           int64_t r0, int64_t rows, uint16_t *dst)
{
    const int64_t total = rows * nb * 4;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int g = int(i & 3);           // weights 8g .. 8g + 7 of the block
        const int64_t rb = i >> 2;          // (row - r0) * nb + block
        const int64_t row = r0 + rb / nb, b = rb % nb;
        const float sw = bits_f16_to_f32(ws[size_t(row) * size_t(nb) + size_t(b)]);
        int q[8];
        if constexpr (kQ4) {
            // Weight i of a block is the low nibble of byte i, weight i + 16
            // the high nibble: group g reads bytes 8 (g & 1) .. + 7.
            const uint2 u = load8<kAligned>(wq + (size_t(row) * size_t(nb) + size_t(b)) * 16 + size_t(g & 1) * 8);
            const int shift = g >= 2 ? 4 : 0;
            for (int j = 0; j < 8; j++) q[j] = int(((j < 4 ? u.x : u.y) >> (8 * (j & 3) + shift)) & 15u) - 8;
        } else {
            const uint2 u = load8<kAligned>(wq + (size_t(row) * size_t(nb) + size_t(b)) * kBlock + size_t(g) * 8);
            for (int j = 0; j < 8; j++) q[j] = int(int8_t(uint8_t((j < 4 ? u.x : u.y) >> (8 * (j & 3)))));
        }
        uint32_t out[4];
        for (int j = 0; j < 4; j++)
            out[j] = uint32_t(f32_to_bf16_bits(sw * float(q[2 * j]))) |
                     uint32_t(f32_to_bf16_bits(sw * float(q[2 * j + 1]))) << 16;
        reinterpret_cast<uint4 *>(dst)[size_t(rb) * 4 + size_t(g)] = make_uint4(out[0], out[1], out[2], out[3]);
    }
}

template <bool kQ4, bool kAligned>
void launch(const DequantParams &p, int64_t nb, cudaStream_t s)
{
    const unsigned blocks = unsigned(std::min<int64_t>(65535, ceil_div(p.rows * nb * 4, kThreads)));
    VLM_LAUNCH((dequant_kernel<kQ4, kAligned>), dim3(blocks), dim3(kThreads), 0, s)(
        static_cast<const uint8_t *>(p.w.data), static_cast<const uint16_t *>(p.w.scales), nb, p.r0, p.rows, p.dst);
}

}  // namespace

bool launch_dequant_quant(const DequantParams &p, cudaStream_t s, std::string &err)
{
    if (p.rows == 0 || p.w.cols == 0) return true;
    const int64_t nb = quant_blocks(p.w.cols);
    // Q8 rows are 32-byte multiples, Q4 rows 16: one base alignment covers all.
    const bool q4 = p.w.dtype == DType::Q4, aligned = (reinterpret_cast<uintptr_t>(p.w.data) & 7u) == 0;
    if (q4 && aligned) launch<true, true>(p, nb, s);
    else if (q4) launch<true, false>(p, nb, s);
    else if (aligned) launch<false, true>(p, nb, s);
    else launch<false, false>(p, nb, s);
    return launch_ok("dequant_quant", err);
}

}  // namespace vlm::kern
