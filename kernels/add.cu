// add.cu: y = a + b, residual add. Shapes: a, b, y (n, d) f32, any row
// strides; y may alias a (each element is read before it is written by the
// same thread). Overwrites y. Grid: one thread per 4 floats (float4 loads when
// every row is 16-byte aligned, else one thread per float), 256 threads per
// block, a grid-stride loop capped at 65535 blocks. Pure bandwidth: 12 bytes
// per element.
#include "kernel_common.cuh"

namespace vlm::kern {
namespace {

constexpr int kThreads = 256;

__global__ void add_kernel(const float *a, int64_t sa, const float *b, int64_t sb, float *y,
                           int64_t sy, int64_t rows, int64_t cols, bool vec4)
{
    const int64_t per_row = vec4 ? cols / 4 : cols;
    const int64_t total = rows * per_row;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / per_row, c = i % per_row;
        if (vec4) {
            float4 va = reinterpret_cast<const float4 *>(a + size_t(r) * size_t(sa))[c];
            float4 vb = reinterpret_cast<const float4 *>(b + size_t(r) * size_t(sb))[c];
            reinterpret_cast<float4 *>(y + size_t(r) * size_t(sy))[c] =
                make_float4(va.x + vb.x, va.y + vb.y, va.z + vb.z, va.w + vb.w);
        } else {
            y[size_t(r) * size_t(sy) + size_t(c)] =
                a[size_t(r) * size_t(sa) + size_t(c)] + b[size_t(r) * size_t(sb) + size_t(c)];
        }
    }
}

}  // namespace

bool launch_add(const AddParams &p, cudaStream_t s, std::string &err)
{
    if (p.a.numel() == 0) return true;
    bool vec4 = rows_are_float4(p.a) && rows_are_float4(p.b) && rows_are_float4(p.y);
    int64_t work = vec4 ? p.a.numel() / 4 : p.a.numel();
    unsigned blocks = unsigned(std::min<int64_t>(65535, ceil_div(work, kThreads)));
    VLM_LAUNCH(add_kernel, dim3(blocks), dim3(kThreads), 0, s)(
        static_cast<const float *>(p.a.data), p.a.stride, static_cast<const float *>(p.b.data),
        p.b.stride, static_cast<float *>(p.y.data), p.y.stride, p.a.rows, p.a.cols, vec4);
    return launch_ok("add", err);
}

}  // namespace vlm::kern
