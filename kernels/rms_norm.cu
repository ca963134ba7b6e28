// rms_norm.cu: y = w * (x / sqrt(mean(x^2) + eps)) per row (GLM's RMSNorm).
// Shapes: x, y (n, d) f32, any row stride; w (1, d) f32/bf16/f16. Overwrites y
// (y may alias x). Grid: one block per row, 256 threads: a row (d = 4096 for
// the text model, 1536 for vision) is 16 KiB, so one pass to sum squares and
// one to scale, both reading float4 when the rows allow it; the second read
// hits L1/L2. Sum of squares in fp32 with a tree reduction (the cpu reference
// sums in double; the difference is ~1e-7 relative).
#include "kernel_common.cuh"

namespace vlm::kern {
namespace {

constexpr int kThreads = 256;

__global__ void rms_norm_kernel(const float *x, int64_t x_stride, const void *w, DType w_dt,
                                float *y, int64_t y_stride, int64_t d, float eps, bool vec4)
{
    __shared__ float red[32];
    const float *xr = x + size_t(blockIdx.x) * size_t(x_stride);
    float *yr = y + size_t(blockIdx.x) * size_t(y_stride);
    float ss = 0.0f;
    if (vec4) {
        for (int64_t c = threadIdx.x; c < d / 4; c += blockDim.x) {
            float4 v = reinterpret_cast<const float4 *>(xr)[c];
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
    } else {
        for (int64_t c = threadIdx.x; c < d; c += blockDim.x) ss += xr[c] * xr[c];
    }
    ss = block_sum(ss, red);
    const float inv = 1.0f / sqrtf(ss / float(d) + eps);
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x)
        yr[c] = load_elem(w, w_dt, size_t(c)) * (xr[c] * inv);
}

}  // namespace

bool launch_rms_norm(const RmsNormParams &p, cudaStream_t s, std::string &err)
{
    if (p.x.rows == 0) return true;
    bool vec4 = rows_are_float4(p.x);
    VLM_LAUNCH(rms_norm_kernel, dim3(unsigned(p.x.rows)), dim3(kThreads), 0, s)(
        static_cast<const float *>(p.x.data), p.x.stride, p.w.data, p.w.dtype,
        static_cast<float *>(p.y.data), p.y.stride, p.x.cols, p.eps, vec4);
    return launch_ok("rms_norm", err);
}

}  // namespace vlm::kern
