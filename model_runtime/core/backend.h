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
//  - Activations are always F32. Weights may be F32, BF16 or F16 (whatever the
//    backend's supports() accepts) and are used in the dtype they were stored
//    in (bf16 is never expanded to f32 in memory), or, for matmul only, one
//    of the block-quantized formats Q8 / Q4 made at load (core/quant.h: their
//    layout, and the exact product the kernels compute).
//  - Every op overwrites its output unless its comment says "accumulates".
//    Outputs overlap no input, except where an op says it may be an input
//    itself (the element-wise ops) or works in place (the rotaries).
//  - Sizes: rows, cols and strides are below 2^31 (kernels and cuBLAS index
//    with int), so every op can run on every backend.
//  - Two sides, as ggml's ggml-backend.h and ggml-backend-impl.h. Callers use
//    the public op functions (matmul(), rms_norm(), ...): they check shapes,
//    dtypes, strides, aliasing and the host index arrays once, ask supports(),
//    and only then call the backend's slot (run_matmul(), ...), all in
//    backend_checked.cpp. Backends implement the slots and may assume valid
//    arguments; nothing else can call a slot.
//  - Nothing throws or aborts. A refused op (bad arguments, unsupported) or a
//    device error is recorded as the backend's fault; every later op is
//    skipped until recover(). Callers check failed() once per step (the
//    model does, after each forward and encode) and fail that step's
//    requests. recover() makes the backend usable again, or says it cannot.
//  - Ops are asynchronous with respect to the host on devices that can be;
//    download() waits for all previously issued work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace vlm {

// Q8, Q4: block-quantized matrix weights (core/quant.h), matmul's w only.
enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3, Q8 = 4, Q4 = 5 };

// Bytes per element; 1 for Q8 and Q4, whose rows are sized by
// quant_row_bytes (core/quant.h) instead.
size_t dtype_size(DType t);
const char *dtype_name(DType t);

struct Tensor {
    void   *data   = nullptr;  // device pointer (host pointer for cpu)
    DType   dtype  = DType::F32;
    int64_t rows   = 0;
    int64_t cols   = 0;
    int64_t stride = 0;        // elements between rows; == cols when contiguous
    // Q8/Q4 only: the per-block f16 scales, inside the same allocation after
    // the quants (core/quant.h); stride is then cols rounded up to blocks.
    void   *scales = nullptr;

    bool    empty() const { return data == nullptr; }
    int64_t numel() const { return rows * cols; }
    size_t  row_bytes() const;  // bytes between rows (of quants, for Q8/Q4)
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

// The ops of the interface, for supports() and fault messages.
enum class Op : uint8_t {
    Matmul, RmsNorm, LayerNorm, Add, SiluMul, Gelu, Embed, RopeText, RopeVision,
    Attention, PosEmbedBicubic, Copy,
};
const char *op_name(Op op);

// A question for supports(): can this backend run `op` with its weight or
// table operand in `dtype` (matmul's w and bias, the norms' w and b, embed's
// and add_pos_embed_bicubic's table, copy's tensors; F32 for the other ops),
// with attention heads of `head_dim` (attention only; 0: not asked)?
struct OpQuery {
    Op    op       = Op::Matmul;
    DType dtype    = DType::F32;
    int   head_dim = 0;
};

// Why a backend stopped running ops: the first failure since recover().
enum class BackendFault : uint8_t {
    None = 0,
    BadArgument,  // the checked front refused an op's arguments: a caller bug
    Unsupported,  // supports() said no, or a size beyond the backend's limits
    Device,       // the device failed (a CUDA error): the step's work is lost
};
const char *fault_name(BackendFault f);

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
    // Weight memory: returns a device tensor for host data that outlives the
    // backend (an mmap of a safetensors file). Default: allocate and upload.
    // cpu overrides it to use the host bytes in place.
    virtual Tensor adopt_weight(const void *host, DType dtype, int64_t rows,
                                int64_t cols);
    // Frees a tensor returned by adopt_weight. Default: free(t.data).
    virtual void  release_weight(Tensor &t);

    // ---- checked transfers (backend_checked.cpp) ----
    // All of `dst` (contiguous: stride == cols, or one row) from host memory
    // holding its rows back to back; and the reverse. Skipped after a fault.
    void upload_rows(const Tensor &dst, const void *host);
    void download_rows(void *host, const Tensor &src);

    // ---- ops: the checked front (backend_checked.cpp) ----
    // Each checks its arguments, then runs the slot of the same name. A
    // refused call records BadArgument or Unsupported with a message naming
    // the op, the argument and both values; after any fault, ops do nothing.
    //
    // y (n, m) = x (n, k) . w (m, k)^T [+ bias (1, m)]. y overlaps nothing.
    void matmul(const Tensor &x, const Tensor &w, const Tensor *bias, Tensor &y);
    // y = w * (x / sqrt(mean(x^2) + eps)) per row; x, y (n, d); w (1, d).
    // (w, b: any dtype supports() accepts; x, y: F32, as every activation.)
    void rms_norm(const Tensor &x, const Tensor &w, float eps, Tensor &y);
    // torch LayerNorm per row with affine w, b (1, d); x, y (n, d).
    void layer_norm(const Tensor &x, const Tensor &w, const Tensor &b, float eps,
                    Tensor &y);
    // y = a + b (same shapes; y may be a or b itself, never a partial overlap).
    void add(const Tensor &a, const Tensor &b, Tensor &y);
    // y = silu(gate) * up (same shapes; views into a fused projection are
    // fine; y may be gate or up itself).
    void silu_mul(const Tensor &gate, const Tensor &up, Tensor &y);
    // y = gelu(x), exact erf form (torch nn.GELU default); y may be x itself.
    void gelu(const Tensor &x, Tensor &y);
    // Rows of `table` (vocab, d) picked by `ids` (host, n, each in [0, vocab))
    // into y (n, d) f32.
    void embed(const Tensor &table, const int32_t *ids, int64_t n, Tensor &y);
    // In-place M-RoPE on x (n, >= n_head*head_dim); positions (host) holds
    // three planes of n positions each: t[0..n), h[0..n), w[0..n).
    void rope_text(Tensor &x, const int32_t *positions, const TextRopeParams &p);
    // In-place vision 2-D RoPE (NeoX half split over the whole head):
    // dims [0, head_dim/4) use row, [head_dim/4, head_dim/2) use col, and
    // dim d pairs with d + head_dim/2. row/col are host arrays of n entries;
    // head_dim is a multiple of 4.
    void rope_vision(Tensor &x, const int32_t *row, const int32_t *col, int n_head,
                     int head_dim, double theta);
    // out (n_q, n_head*head_dim) = softmax(q k^T * scale [+mask]) v, with
    // q (n_q, n_head*head_dim), k and v (n_kv, n_kv_head*head_dim). Causal:
    // 0 <= kv_offset <= n_kv - n_q. Segments: lengths > 0 summing to
    // n_q == n_kv. out overlaps nothing.
    void attention(const Tensor &q, const Tensor &k, const Tensor &v,
                   const AttentionParams &p, Tensor &out);
    // Vision position embedding: for each of n rows with (row, col) in a
    // grid (grid_h[i], grid_w[i]), bicubic grid_sample (A = -0.75,
    // align_corners=False, border padding) of `table` viewed as
    // (side, side, d), accumulated: y[i] += sample. Host arrays of n entries,
    // 0 <= row < grid_h, 0 <= col < grid_w.
    void add_pos_embed_bicubic(const Tensor &table, int side, const int32_t *row,
                               const int32_t *col, const int32_t *grid_h,
                               const int32_t *grid_w, Tensor &y);
    // Device-to-device copy between tensors of the same dtype and shape
    // (KV-cache writes), any dtype; src and dst do not overlap.
    void copy(const Tensor &src, Tensor &dst);

    // ---- capabilities (optional) ----
    // Whether the backend runs q.op for these operands. Default: weight and
    // table operands F32, BF16 or F16 (any dtype for copy), everything else
    // F32, any head_dim. The checked front asks before every op; the loader
    // asks for every weight, so a model the backend cannot run is refused
    // at load with the tensor's name.
    virtual bool supports(const OpQuery &q) const;
    // Whether matmul of n rows, weights of `w` and inner size k rounds the
    // activations to w's dtype first (a one-dtype product: cuBLAS bf16 GEMM,
    // AVX-512 vdpbf16ps). It bounds the error against an f32 reference by
    // the rounding of x (2^-9 relative for bf16). Default: false.
    virtual bool matmul_rounds_x(DType w, int64_t n, int64_t k) const;

    // ---- faults (not virtual, except recover) ----
    bool                failed() const { return fault_ != BackendFault::None; }
    BackendFault        fault() const { return fault_; }
    // "<op or call>: <what went wrong>", empty when not failed.
    const std::string  &fault_message() const { return fault_message_; }
    // Makes a failed backend usable again: waits for queued work, clears the
    // device's error state and the fault; true when the backend works (also
    // when it had not failed). False, keeping the fault and saying why in
    // `err`, when it cannot: a lost device fails every later call and the
    // process must be restarted. Default: clear and return true.
    virtual bool recover(std::string &err);

    // ---- optional ----
    // Finish all queued work. Default: nothing (synchronous backends).
    virtual void synchronize() {}

protected:
    // Records the first fault since recover() (later ones follow from it and
    // are dropped). Backends call it for device errors; the checked front
    // for refused arguments.
    void record_fault(BackendFault kind, std::string message);
    void clear_fault();

    // ---- op slots (required; called only by the checked front, with valid
    // arguments and no fault pending; semantics as the op of the same name) ----
    virtual void run_matmul(const Tensor &x, const Tensor &w, const Tensor *bias,
                            Tensor &y) = 0;
    virtual void run_rms_norm(const Tensor &x, const Tensor &w, float eps, Tensor &y) = 0;
    virtual void run_layer_norm(const Tensor &x, const Tensor &w, const Tensor &b,
                                float eps, Tensor &y) = 0;
    virtual void run_add(const Tensor &a, const Tensor &b, Tensor &y) = 0;
    virtual void run_silu_mul(const Tensor &gate, const Tensor &up, Tensor &y) = 0;
    virtual void run_gelu(const Tensor &x, Tensor &y) = 0;
    virtual void run_embed(const Tensor &table, const int32_t *ids, int64_t n,
                           Tensor &y) = 0;
    virtual void run_rope_text(Tensor &x, const int32_t *positions,
                               const TextRopeParams &p) = 0;
    virtual void run_rope_vision(Tensor &x, const int32_t *row, const int32_t *col,
                                 int n_head, int head_dim, double theta) = 0;
    virtual void run_attention(const Tensor &q, const Tensor &k, const Tensor &v,
                               const AttentionParams &p, Tensor &out) = 0;
    virtual void run_add_pos_embed_bicubic(const Tensor &table, int side,
                                           const int32_t *row, const int32_t *col,
                                           const int32_t *grid_h, const int32_t *grid_w,
                                           Tensor &y) = 0;
    virtual void run_copy(const Tensor &src, Tensor &dst) = 0;

private:
    BackendFault fault_ = BackendFault::None;
    std::string  fault_message_;
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
