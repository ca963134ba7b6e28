// convert.cu: dst = src converted between F32, BF16 and F16 (round to nearest
// even, NaN kept quiet), bit-exact with cpu_ops_ref's f32_to_bf16/f32_to_f16.
// Shapes: src, dst (n, d), any strides. Overwrites dst. Used to round f32
// activations to bf16 before a cuBLAS bf16 GEMM (the x operand, n x k, read
// once) and by tests. Grid: one thread per element, grid-stride over <= 65535
// blocks of 256 threads; bandwidth bound (6 bytes per element f32->bf16).
#include "kernel_common.cuh"

namespace vlm::kern {
namespace {

constexpr int kThreads = 256;

__global__ void convert_kernel(const void *src, DType sdt, int64_t ss, void *dst, DType ddt,
                               int64_t ds, int64_t rows, int64_t cols)
{
    const int64_t total = rows * cols;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / cols, c = i % cols;
        const float v = load_elem(src, sdt, size_t(r) * size_t(ss) + size_t(c));
        const size_t o = size_t(r) * size_t(ds) + size_t(c);
        if (ddt == DType::F32)
            static_cast<float *>(dst)[o] = v;
        else if (ddt == DType::BF16)
            static_cast<uint16_t *>(dst)[o] = f32_to_bf16_bits(v);
        else
            static_cast<uint16_t *>(dst)[o] = f32_to_f16_bits(v);
    }
}

}  // namespace

bool launch_convert(const ConvertParams &p, cudaStream_t s, std::string &err)
{
    if (p.src.numel() == 0) return true;
    unsigned blocks = unsigned(std::min<int64_t>(65535, ceil_div(p.src.numel(), kThreads)));
    VLM_LAUNCH(convert_kernel, dim3(blocks), dim3(kThreads), 0, s)(
        p.src.data, p.src.dtype, p.src.stride, p.dst.data, p.dst.dtype, p.dst.stride, p.src.rows,
        p.src.cols);
    return launch_ok("convert", err);
}

}  // namespace vlm::kern
