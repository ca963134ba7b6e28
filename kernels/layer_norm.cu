// layer_norm.cu: torch LayerNorm per row, y = (x - mean) / sqrt(var + eps) * w
// + b with the biased variance. Shapes: x, y (n, d) f32; w, b (1, d) any float
// dtype. Overwrites y (may alias x). Used only by the vision merger (d = 4096
// at GLM-4.6V sizes, n = image tokens). Grid: one block per row, 256 threads;
// two-pass (mean, then squared deviations from the mean) as torch does, so a
// large common offset does not cancel. fp32 tree sums.
#include "kernel_common.cuh"

namespace vlm::kern {
namespace {

constexpr int kThreads = 256;

__global__ void layer_norm_kernel(const float *x, int64_t x_stride, const void *w, DType w_dt,
                                  const void *b, DType b_dt, float *y, int64_t y_stride,
                                  int64_t d, float eps)
{
    __shared__ float red[32];
    const float *xr = x + size_t(blockIdx.x) * size_t(x_stride);
    float *yr = y + size_t(blockIdx.x) * size_t(y_stride);
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) s += xr[c];
    const float mean = block_sum(s, red) / float(d);
    float v = 0.0f;
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
        float dv = xr[c] - mean;
        v += dv * dv;
    }
    const float var = block_sum(v, red) / float(d);
    const float rstd = 1.0f / sqrtf(var + eps);
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x)
        yr[c] = ((xr[c] - mean) * rstd) * load_elem(w, w_dt, size_t(c)) + load_elem(b, b_dt, size_t(c));
}

}  // namespace

bool launch_layer_norm(const LayerNormParams &p, cudaStream_t s, std::string &err)
{
    if (p.x.rows == 0) return true;
    VLM_LAUNCH(layer_norm_kernel, dim3(unsigned(p.x.rows)), dim3(kThreads), 0, s)(
        static_cast<const float *>(p.x.data), p.x.stride, p.w.data, p.w.dtype, p.b.data, p.b.dtype,
        static_cast<float *>(p.y.data), p.y.stride, p.x.cols, p.eps);
    return launch_ok("layer_norm", err);
}

}  // namespace vlm::kern
