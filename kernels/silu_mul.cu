// silu_mul.cu: SwiGLU, y = silu(gate) * up = gate / (1 + exp(-gate)) * up.
// Shapes: gate, up, y (n, inter) f32; gate and up are usually column views of
// the fused gate_up projection (row stride 2*inter), y contiguous. Overwrites
// y. Grid: one thread per 4 floats (float4 when all rows are 16-byte aligned,
// true for inter = 13696), 256 threads, grid-stride loop over <= 65535 blocks.
// expf, not __expf: the fast intrinsic's 2-ulp error would show in the
// 1e-4 golden comparisons after many layers.
#include "kernel_common.cuh"

namespace vlm::kern {
namespace {

constexpr int kThreads = 256;

__device__ inline float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

__global__ void silu_mul_kernel(const float *g, int64_t sg, const float *u, int64_t su, float *y,
                                int64_t sy, int64_t rows, int64_t cols, bool vec4)
{
    const int64_t per_row = vec4 ? cols / 4 : cols;
    const int64_t total = rows * per_row;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / per_row, c = i % per_row;
        if (vec4) {
            float4 vg = reinterpret_cast<const float4 *>(g + size_t(r) * size_t(sg))[c];
            float4 vu = reinterpret_cast<const float4 *>(u + size_t(r) * size_t(su))[c];
            reinterpret_cast<float4 *>(y + size_t(r) * size_t(sy))[c] =
                make_float4(silu_times(vg.x, vu.x), silu_times(vg.y, vu.y), silu_times(vg.z, vu.z),
                            silu_times(vg.w, vu.w));
        } else {
            y[size_t(r) * size_t(sy) + size_t(c)] =
                silu_times(g[size_t(r) * size_t(sg) + size_t(c)], u[size_t(r) * size_t(su) + size_t(c)]);
        }
    }
}

}  // namespace

bool launch_silu_mul(const SiluMulParams &p, cudaStream_t s, std::string &err)
{
    if (p.gate.numel() == 0) return true;
    bool vec4 = rows_are_float4(p.gate) && rows_are_float4(p.up) && rows_are_float4(p.y);
    int64_t work = vec4 ? p.gate.numel() / 4 : p.gate.numel();
    unsigned blocks = unsigned(std::min<int64_t>(65535, ceil_div(work, kThreads)));
    VLM_LAUNCH(silu_mul_kernel, dim3(blocks), dim3(kThreads), 0, s)(
        static_cast<const float *>(p.gate.data), p.gate.stride, static_cast<const float *>(p.up.data),
        p.up.stride, static_cast<float *>(p.y.data), p.y.stride, p.gate.rows, p.gate.cols, vec4);
    return launch_ok("silu_mul", err);
}

}  // namespace vlm::kern
