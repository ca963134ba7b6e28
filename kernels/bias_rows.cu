// bias_rows.cu: y[r, :] = bias for every row of y, before a cuBLAS GEMM that
// accumulates (beta = 1) onto it: the bias epilogue for the plain cublasGemmEx
// path. Shapes: bias (1, m) any float dtype, y (n, m) f32. Overwrites y.
// Grid: one thread per element, grid-stride over <= 65535 blocks of 256.
#include "kernel_common.cuh"

namespace vlm::kern {
namespace {

constexpr int kThreads = 256;

__global__ void bias_rows_kernel(const void *bias, DType dt, float *y, int64_t sy, int64_t rows,
                                 int64_t cols)
{
    const int64_t total = rows * cols;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / cols, c = i % cols;
        y[size_t(r) * size_t(sy) + size_t(c)] = load_elem(bias, dt, size_t(c));
    }
}

}  // namespace

bool launch_bias_rows(const BiasRowsParams &p, cudaStream_t s, std::string &err)
{
    if (p.y.numel() == 0) return true;
    unsigned blocks = unsigned(std::min<int64_t>(65535, ceil_div(p.y.numel(), kThreads)));
    VLM_LAUNCH(bias_rows_kernel, dim3(blocks), dim3(kThreads), 0, s)(
        p.bias.data, p.bias.dtype, static_cast<float *>(p.y.data), p.y.stride, p.y.rows, p.y.cols);
    return launch_ok("bias_rows", err);
}

}  // namespace vlm::kern
