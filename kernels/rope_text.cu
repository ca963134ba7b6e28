// rope_text.cu: the text decoder's M-RoPE, in place on q or k.
// Shapes: x (n, n_head*head_dim) f32 (a column view of the fused qkv output is
// fine), positions (3, n) int32 device planes t/h/w, inv_freq (rotary_dim/2)
// f32 computed on the host exactly as transformers does (rope_inv_freq).
// Rotation: interleaved pairs (2i, 2i+1) of the first rotary_dim dims of every
// head (GLM's partial rotary: rotary_dim = head_dim/2 = 64 at GLM-4.6V sizes);
// frequency i takes its position from plane t, h or w by mrope_section.
// Grid: one block per token, 128 threads: the block first computes the
// rotary_dim/2 (cos, sin) pairs into shared memory (dynamic, 2 floats each),
// then all heads rotate with them, so sincos runs once per (token, freq), not
// per head. 32 heads x 32 pairs = 1024 rotations per token.
#include "kernel_common.cuh"

namespace vlm::kern {
namespace {

constexpr int kThreads = 128;

__global__ void rope_text_kernel(float *x, int64_t stride, const int32_t *positions, int64_t n,
                                 const float *inv_freq, int n_head, int head_dim, int n_freq,
                                 int sec0, int sec1)
{
    VLM_DYNAMIC_SHARED(float, cs);  // [2 * n_freq]: cos, sin interleaved
    const int64_t r = blockIdx.x;
    for (int i = threadIdx.x; i < n_freq; i += blockDim.x) {
        const int plane = i < sec0 ? 0 : (i < sec0 + sec1 ? 1 : 2);
        const float angle = float(positions[size_t(plane) * size_t(n) + size_t(r)]) * inv_freq[i];
        cs[2 * i] = cosf(angle);
        cs[2 * i + 1] = sinf(angle);
    }
    __syncthreads();
    float *xr = x + size_t(r) * size_t(stride);
    for (int j = threadIdx.x; j < n_head * n_freq; j += blockDim.x) {
        const int h = j / n_freq, i = j % n_freq;
        float *v = xr + size_t(h) * size_t(head_dim) + size_t(2 * i);
        const float a = v[0], b = v[1], c = cs[2 * i], s = cs[2 * i + 1];
        v[0] = a * c - b * s;
        v[1] = b * c + a * s;
    }
}

}  // namespace

bool launch_rope_text(const RopeTextParams &p, cudaStream_t s, std::string &err)
{
    const TextRopeParams &r = p.rope;
    if (p.x.rows == 0 || r.rotary_dim == 0) return true;
    const int n_freq = r.rotary_dim / 2;
    VLM_LAUNCH(rope_text_kernel, dim3(unsigned(p.x.rows)), dim3(kThreads),
               size_t(2 * n_freq) * sizeof(float), s)(
        static_cast<float *>(p.x.data), p.x.stride, p.positions, p.x.rows, p.inv_freq, r.n_head,
        r.head_dim, n_freq, r.section[0], r.section[1]);
    return launch_ok("rope_text", err);
}

}  // namespace vlm::kern
