// embed.cu: token embedding gather, y[i, :] = f32(table[ids[i], :]).
// Shapes: table (vocab, d) f32/bf16/f16 (vocab 151552 x 4096 bf16 for
// GLM-4.6V), ids (n) int32 on the device, y (n, d) f32. Overwrites y. Grid:
// one block per token, 256 threads; bf16/f16 rows are read as uint4 (8
// elements, 16 bytes) when rows are 16-byte aligned and d % 8 == 0, f32 rows as
// float4. Ids are not range-checked here: the model validates them on the
// host before upload (an out-of-range id would read outside the table).
#include "kernel_common.cuh"

namespace vlm::kern {
namespace {

constexpr int kThreads = 256;

__global__ void embed_kernel(const void *table, DType dt, int64_t t_stride, const int32_t *ids,
                             float *y, int64_t y_stride, int64_t d, bool vec)
{
    const size_t row = size_t(ids[blockIdx.x]);
    float *yr = y + size_t(blockIdx.x) * size_t(y_stride);
    if (vec && dt != DType::F32) {
        const uint4 *src = reinterpret_cast<const uint4 *>(static_cast<const uint16_t *>(table) +
                                                           row * size_t(t_stride));
        for (int64_t c = threadIdx.x; c < d / 8; c += blockDim.x) {
            uint4 v = src[c];
            uint32_t words[4] = {v.x, v.y, v.z, v.w};
            for (int j = 0; j < 4; j++) {
                uint16_t lo = uint16_t(words[j] & 0xffffu), hi = uint16_t(words[j] >> 16);
                yr[c * 8 + 2 * j] = dt == DType::BF16 ? bits_bf16_to_f32(lo) : bits_f16_to_f32(lo);
                yr[c * 8 + 2 * j + 1] = dt == DType::BF16 ? bits_bf16_to_f32(hi) : bits_f16_to_f32(hi);
            }
        }
    } else if (vec) {
        const float4 *src = reinterpret_cast<const float4 *>(static_cast<const float *>(table) +
                                                             row * size_t(t_stride));
        for (int64_t c = threadIdx.x; c < d / 4; c += blockDim.x)
            reinterpret_cast<float4 *>(yr)[c] = src[c];
    } else {
        for (int64_t c = threadIdx.x; c < d; c += blockDim.x)
            yr[c] = load_elem(table, dt, row * size_t(t_stride) + size_t(c));
    }
}

}  // namespace

bool launch_embed(const EmbedParams &p, cudaStream_t s, std::string &err)
{
    if (p.n == 0) return true;
    bool vec;
    if (p.table.dtype == DType::F32) {
        vec = rows_are_float4(p.table) && rows_are_float4(p.y);
    } else {
        vec = is_aligned16(p.table.data) && p.table.cols % 8 == 0 && p.table.stride % 8 == 0;
    }
    VLM_LAUNCH(embed_kernel, dim3(unsigned(p.n)), dim3(kThreads), 0, s)(
        p.table.data, p.table.dtype, p.table.stride, p.ids, static_cast<float *>(p.y.data),
        p.y.stride, p.table.cols, vec);
    return launch_ok("embed", err);
}

}  // namespace vlm::kern
