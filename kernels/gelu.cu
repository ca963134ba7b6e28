// gelu.cu: y = gelu(x) = 0.5 x (1 + erf(x / sqrt(2))), torch's exact form.
// Shapes: x, y (n, d) f32 (y may alias x). Overwrites y. Grid: one thread per
// 4 floats (float4 when rows allow), 256 threads, grid-stride loop over
// <= 65535 blocks. erff is accurate to 2 ulp; the cpu reference uses double.
#include "kernel_common.cuh"

namespace vlm::kern {
namespace {

constexpr int kThreads = 256;

__device__ inline float gelu_erf(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }

__global__ void gelu_kernel(const float *x, int64_t sx, float *y, int64_t sy, int64_t rows,
                            int64_t cols, bool vec4)
{
    const int64_t per_row = vec4 ? cols / 4 : cols;
    const int64_t total = rows * per_row;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / per_row, c = i % per_row;
        if (vec4) {
            float4 v = reinterpret_cast<const float4 *>(x + size_t(r) * size_t(sx))[c];
            reinterpret_cast<float4 *>(y + size_t(r) * size_t(sy))[c] =
                make_float4(gelu_erf(v.x), gelu_erf(v.y), gelu_erf(v.z), gelu_erf(v.w));
        } else {
            y[size_t(r) * size_t(sy) + size_t(c)] = gelu_erf(x[size_t(r) * size_t(sx) + size_t(c)]);
        }
    }
}

}  // namespace

bool launch_gelu(const GeluParams &p, cudaStream_t s, std::string &err)
{
    if (p.x.numel() == 0) return true;
    bool vec4 = rows_are_float4(p.x) && rows_are_float4(p.y);
    int64_t work = vec4 ? p.x.numel() / 4 : p.x.numel();
    unsigned blocks = unsigned(std::min<int64_t>(65535, ceil_div(work, kThreads)));
    VLM_LAUNCH(gelu_kernel, dim3(blocks), dim3(kThreads), 0, s)(
        static_cast<const float *>(p.x.data), p.x.stride, static_cast<float *>(p.y.data), p.y.stride,
        p.x.rows, p.x.cols, vec4);
    return launch_ok("gelu", err);
}

}  // namespace vlm::kern
