// rope_vision.cu: the vision tower's 2-D rotary embedding, in place on q or k.
// Shapes: x (n_patch, n_head*head_dim) f32 (views of the fused qkv are fine),
// row/col (n_patch) int32 device, inv_freq (head_dim/4) f32 from the host
// (rope_inv_freq(theta, head_dim/2)). NeoX half split over the whole head:
// dim d < head_dim/2 pairs with d + head_dim/2; dims [0, head_dim/4) rotate by
// the patch row, [head_dim/4, head_dim/2) by its column. head_dim = 128 at
// GLM-4.6V sizes (12 heads). Grid: one block per patch, 128 threads; the
// head_dim/2 (cos, sin) pairs go to shared memory first, then every head uses
// them.
#include "kernel_common.cuh"

namespace vlm::kern {
namespace {

constexpr int kThreads = 128;

__global__ void rope_vision_kernel(float *x, int64_t stride, const int32_t *row, const int32_t *col,
                                   const float *inv_freq, int n_head, int head_dim)
{
    VLM_DYNAMIC_SHARED(float, cs);  // [head_dim]: cos, sin of each of head_dim/2 angles
    const int64_t r = blockIdx.x;
    const int quarter = head_dim / 4, half = head_dim / 2;
    for (int d = threadIdx.x; d < half; d += blockDim.x) {
        const float angle = d < quarter ? float(row[r]) * inv_freq[d] : float(col[r]) * inv_freq[d - quarter];
        cs[2 * d] = cosf(angle);
        cs[2 * d + 1] = sinf(angle);
    }
    __syncthreads();
    float *xr = x + size_t(r) * size_t(stride);
    for (int j = threadIdx.x; j < n_head * half; j += blockDim.x) {
        const int h = j / half, d = j % half;
        float *v = xr + size_t(h) * size_t(head_dim);
        const float a = v[d], b = v[d + half], c = cs[2 * d], s = cs[2 * d + 1];
        v[d] = a * c - b * s;
        v[d + half] = b * c + a * s;
    }
}

}  // namespace

bool launch_rope_vision(const RopeVisionParams &p, cudaStream_t s, std::string &err)
{
    if (p.x.rows == 0) return true;
    VLM_LAUNCH(rope_vision_kernel, dim3(unsigned(p.x.rows)), dim3(kThreads),
               size_t(p.head_dim) * sizeof(float), s)(
        static_cast<float *>(p.x.data), p.x.stride, p.row, p.col, p.inv_freq, p.n_head, p.head_dim);
    return launch_ok("rope_vision", err);
}

}  // namespace vlm::kern
