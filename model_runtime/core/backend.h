// backend.h: the small interface the model is written against (ggml's idea of a
// backend, as a table of virtual functions). The model never touches tensor
// memory directly: it asks the backend to allocate, upload and run ops, so a
// CUDA backend plugs in without any change to the model code.
//
// Conventions
//  - A Tensor is a 2-D row-major view of device memory: `rows` x `cols`
//    elements, consecutive rows `stride` elements apart (stride >= cols), so a
//    column slice of a fused projection (q of qkv, gate of gate_up) is a view,
//    not a copy. 1-D tensors (norm weights, biases) have rows == 1.
//  - Activations are always F32. Weights may be F32, BF16 or F16 and are used
//    in the dtype they were stored in (bf16 is never expanded to f32 in memory).
//  - Every op overwrites its output unless its comment says "accumulates".
//  - Shapes and bounds are checked once, by the free functions in
//    backend_checked.h; backend implementations may assume valid arguments.
//  - Ops are asynchronous with respect to the host on devices that can be;
//    download() waits for all previously issued work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace vlm {

enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3 };

size_t dtype_size(DType t);
const char *dtype_name(DType t);

struct Tensor {
    void   *data   = nullptr;  // device pointer (host pointer for cpu)
    DType   dtype  = DType::F32;
    int64_t rows   = 0;
    int64_t cols   = 0;
    int64_t stride = 0;        // elements between rows; == cols when contiguous

    bool    empty() const { return data == nullptr; }
    int64_t numel() const { return rows * cols; }
    size_t  row_bytes() const { return size_t(stride) * dtype_size(dtype); }
    // A view of `n` rows starting at row `r0`.
    Tensor  row_slice(int64_t r0, int64_t n) const;
    // A view of columns [c0, c0 + n) of every row.
    Tensor  col_slice(int64_t c0, int64_t n) const;
};

// Parameters of the text decoder's multimodal rotary embedding (M-RoPE):
// interleaved pairs (2i, 2i+1) over the first `rotary_dim` dims of each head;
// frequency i uses position plane t, h or w according to `mrope_section`.
struct TextRopeParams {
    int    n_head     = 0;
    int    head_dim   = 0;
    int    rotary_dim = 0;     // head_dim * partial_rotary_factor, even
    double theta      = 10000.0;
    int    section[3] = {0, 0, 0};  // sums to rotary_dim / 2
};

// Attention over one sequence: q (n_q, n_head*head_dim), k and v
// (n_kv, n_kv_head*head_dim). Query head h reads kv head h / (n_head /
// n_kv_head). With `causal`, query i (0-based among the n_q) sees keys
// [0, kv_offset + i]; kv_offset = n_kv - n_q for prefill/decode after a cache.
// Without `causal`, `segments` (may be empty) splits rows into independent
// blocks (vision: one block per image), given as `n_segments` lengths that
// sum to n_q == n_kv, host memory.
struct AttentionParams {
    int            n_head     = 0;
    int            n_kv_head  = 0;
    int            head_dim   = 0;
    float          scale      = 1.0f;
    bool           causal     = true;
    int64_t        kv_offset  = 0;
    const int32_t *segments   = nullptr;
    int            n_segments = 0;
};

class Backend {
public:
    virtual ~Backend() = default;

    virtual const char *name() const = 0;

    // ---- memory (required) ----
    // Device allocation of `bytes`, 64-byte aligned, zero-filled.
    virtual void *alloc(size_t bytes) = 0;
    virtual void  free(void *ptr) = 0;
    virtual void  upload(void *dst, const void *src, size_t bytes) = 0;
    virtual void  download(void *dst, const void *src, size_t bytes) = 0;
    // Device-to-device copy of rows between tensors of the same dtype and cols.
    virtual void  copy(const Tensor &src, Tensor &dst) = 0;
    // Weight memory: returns a device tensor for host data that outlives the
    // backend (an mmap of a safetensors file). Default: allocate and upload.
    // cpu overrides it to use the host bytes in place.
    virtual Tensor adopt_weight(const void *host, DType dtype, int64_t rows,
                                int64_t cols);
    // Frees a tensor returned by adopt_weight. Default: free(t.data).
    virtual void  release_weight(Tensor &t);

    // ---- ops (required) ----
    // y (n, m) = x (n, k) . w (m, k)^T [+ bias (1, m)]. w may be F32/BF16/F16.
    virtual void matmul(const Tensor &x, const Tensor &w, const Tensor *bias,
                        Tensor &y) = 0;
    // y = w * (x / sqrt(mean(x^2) + eps)) per row; w (1, cols).
    virtual void rms_norm(const Tensor &x, const Tensor &w, float eps,
                          Tensor &y) = 0;
    // torch LayerNorm per row with affine w, b (1, cols).
    virtual void layer_norm(const Tensor &x, const Tensor &w, const Tensor &b,
                            float eps, Tensor &y) = 0;
    // y = a + b (same shapes; y may alias a).
    virtual void add(const Tensor &a, const Tensor &b, Tensor &y) = 0;
    // y = silu(gate) * up (same shapes; views into a fused projection are fine).
    virtual void silu_mul(const Tensor &gate, const Tensor &up, Tensor &y) = 0;
    // y = gelu(x), exact erf form (torch nn.GELU default).
    virtual void gelu(const Tensor &x, Tensor &y) = 0;
    // Rows of `table` (vocab, d) picked by `ids` (host, n) into y (n, d) f32.
    virtual void embed(const Tensor &table, const int32_t *ids, int64_t n,
                       Tensor &y) = 0;
    // In-place M-RoPE on x (n, n_head*head_dim); positions (host) holds three
    // planes of n positions each: t[0..n), h[0..n), w[0..n).
    virtual void rope_text(Tensor &x, const int32_t *positions,
                           const TextRopeParams &p) = 0;
    // In-place vision 2-D RoPE (NeoX half split over the whole head):
    // dims [0, head_dim/4) use row, [head_dim/4, head_dim/2) use col, and
    // dim d pairs with d + head_dim/2. row/col are host arrays of n entries.
    virtual void rope_vision(Tensor &x, const int32_t *row, const int32_t *col,
                             int n_head, int head_dim, double theta) = 0;
    // out (n_q, n_head*head_dim) = softmax(q k^T * scale [+mask]) v.
    virtual void attention(const Tensor &q, const Tensor &k, const Tensor &v,
                           const AttentionParams &p, Tensor &out) = 0;
    // Vision position embedding: for each of n rows with (row, col) in a
    // grid (grid_h[i], grid_w[i]), bicubic grid_sample (A = -0.75,
    // align_corners=False, border padding) of `table` viewed as
    // (side, side, d), accumulated: y[i] += sample. Host arrays of n entries.
    virtual void add_pos_embed_bicubic(const Tensor &table, int side,
                                       const int32_t *row, const int32_t *col,
                                       const int32_t *grid_h,
                                       const int32_t *grid_w, Tensor &y) = 0;

    // ---- optional ----
    // Finish all queued work. Default: nothing (synchronous backends).
    virtual void synchronize() {}
};

struct BackendOptions {
    int n_threads = 0;  // 0: one per online CPU
    // Keeps f32 activations in every matmul (no rounding to bf16 for bf16
    // weights) - slower; for tests comparing with fp32-math references.
    bool exact_f32_activations = false;
};

// RAII owner of one device allocation.
struct DeviceBuffer {
    Backend *backend = nullptr;
    Tensor   t;
    DeviceBuffer() = default;
    DeviceBuffer(Backend &b, DType dtype, int64_t rows, int64_t cols);
    DeviceBuffer(DeviceBuffer &&o) noexcept;
    DeviceBuffer &operator=(DeviceBuffer &&o) noexcept;
    DeviceBuffer(const DeviceBuffer &) = delete;
    DeviceBuffer &operator=(const DeviceBuffer &) = delete;
    ~DeviceBuffer();
};

}  // namespace vlm
