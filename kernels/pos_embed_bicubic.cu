// pos_embed_bicubic.cu: the vision tower's position embedding, accumulated:
// y[i, :] += bicubic sample of `table` viewed as (side, side, d) at patch i's
// (row, col) within its image grid (grid_h[i], grid_w[i]), as torch's
// grid_sample(mode=bicubic, align_corners=False, padding_mode=border), A=-0.75.
// Shapes: table (side*side, d) f32/bf16/f16 (side 24, d 1536 at GLM-4.6V
// sizes), y (n_patch, d) f32, row/col/grid_h/grid_w (n_patch) int32 device.
// Grid: one block per patch, 256 threads over d; every thread recomputes the
// 4+4 tap weights (a few flops, no shared memory or barrier needed), then reads
// 16 table rows (L2-resident: 24*24*1536*2 = 1.7 MB) per column. Weights and
// the sum use the same fused multiply-adds as cpu_ops_ref.
#include "kernel_common.cuh"

namespace vlm::kern {
namespace {

constexpr int kThreads = 256;

__device__ inline void cubic_weights(float t, float w[4])
{
    const float A = -0.75f;
    auto far = [A](float x) { return ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A; };
    auto near = [A](float x) {
        float inner = fmaf(A + 2.0f, x, -(A + 3.0f));
        return fmaf(inner * x, x, 1.0f);
    };
    w[0] = far(t + 1.0f);
    w[1] = near(t);
    w[2] = near(1.0f - t);
    w[3] = far(2.0f - t);
}

__global__ void pos_embed_kernel(const void *table, DType dt, int64_t t_stride, int side,
                                 const int32_t *row, const int32_t *col, const int32_t *grid_h,
                                 const int32_t *grid_w, float *y, int64_t y_stride, int64_t d)
{
    const int64_t i = blockIdx.x;
    const float gx = (float(col[i]) + 0.5f) / float(grid_w[i]) * 2.0f - 1.0f;
    const float gy = (float(row[i]) + 0.5f) / float(grid_h[i]) * 2.0f - 1.0f;
    const float half = float(side) / 2.0f;
    const float sx = fmaf(gx + 1.0f, half, -0.5f);
    const float sy = fmaf(gy + 1.0f, half, -0.5f);
    const float fx0 = floorf(sx), fy0 = floorf(sy);
    float wx[4], wy[4];
    cubic_weights(sx - fx0, wx);
    cubic_weights(sy - fy0, wy);
    size_t tap[4][4];
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            int ty = min(max(int(fy0) - 1 + a, 0), side - 1);
            int tx = min(max(int(fx0) - 1 + b, 0), side - 1);
            tap[a][b] = (size_t(ty) * size_t(side) + size_t(tx)) * size_t(t_stride);
        }
    float *yr = y + size_t(i) * size_t(y_stride);
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
        float rows4[4];
        for (int a = 0; a < 4; a++) {
            float acc = load_elem(table, dt, tap[a][0] + size_t(c)) * wx[0];
            for (int b = 1; b < 4; b++) acc = fmaf(load_elem(table, dt, tap[a][b] + size_t(c)), wx[b], acc);
            rows4[a] = acc;
        }
        float s = rows4[0] * wy[0];
        for (int a = 1; a < 4; a++) s = fmaf(rows4[a], wy[a], s);
        yr[c] += s;
    }
}

}  // namespace

bool launch_pos_embed_bicubic(const PosEmbedParams &p, cudaStream_t s, std::string &err)
{
    if (p.y.rows == 0) return true;
    VLM_LAUNCH(pos_embed_kernel, dim3(unsigned(p.y.rows)), dim3(kThreads), 0, s)(
        p.table.data, p.table.dtype, p.table.stride, p.side, p.row, p.col, p.grid_h, p.grid_w,
        static_cast<float *>(p.y.data), p.y.stride, p.y.cols);
    return launch_ok("pos_embed_bicubic", err);
}

}  // namespace vlm::kern
