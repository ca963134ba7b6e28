// backend_cuda.cpp: the CUDA backend. Device memory from cudaMalloc, weights
// uploaded once (Backend's default adopt_weight), activations f32 on the
// device, everything on one stream. Matrix products: n <= 16 rows go to our
// GEMV (f32 math on any weight dtype, like the cpu backend's small-n path);
// larger ones to cublasGemmEx, f32 weights in f32, bf16/f16 weights with the
// activations rounded to the weight dtype first (fp32 accumulation), the bias
// written into y beforehand and accumulated with beta = 1. Every other op is
// one kernel from kernels/*.cu.
// Block-quantized weights (Q8/Q4, core/quant.h; uploaded by Backend's
// default adopt_weight: quants and scales in one allocation): n <= 16 rows
// run gemv_quant.cu, exactly the product core/quant.h defines (x rounded to
// int8 per block, integer block dots); more rows dequantize w to bf16 in a
// reused scratch buffer, a chunk of rows at a time (dequant_quant.cu), and
// run the bf16 cublasGemmEx on x rounded to bf16, which is not that
// definition: both operands are rounded to bf16 instead (matmul_rounds_x
// says so, and the op table holds it to that product). Host arrays that ops receive (token ids,
// positions, segment lengths) are staged into reusable device buffers with
// stream-ordered copies, so no op blocks the host; download() synchronises.
// Arguments arrive checked (core/backend_checked.cpp): the slots below and
// the launchers do not re-check them; supports() states the one kernel limit
// (attention head_dim <= 128).
// Errors (CUDA_CHECK fails the batch): a failed CUDA or cuBLAS call records a
// Device fault on the backend (Backend::record_fault) and the op returns;
// the checked front then skips every later op, the model fails the step,
// and the engine fails that batch's requests with 503. recover() clears a
// transient error (cudaGetLastError) and probes the stream: if the error is
// sticky (an illegal address, a lost device: the CUDA context is dead), it
// reports the device lost and the backend stays failed until the process
// restarts. Nothing here aborts.
// Leaves out CUDA graph capture of decode steps: the model issues host
// uploads and per-step pointer/offset changes (the KV-cache row, kv_offset)
// on every call, so a captured graph would need its kernel parameters updated
// per step; see README.md.
#include "cuda_compat.h"
#include "backend_cuda.h"
#include "core/cpu_ops_ref.h"
#include "core/quant.h"
#include "kernels.h"

#include <algorithm>
#include <string>
#include <vector>

namespace vlm {
namespace {

std::string cuda_error_text(cudaError_t e)
{
    return std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")";
}

// A device buffer that only grows (scratch for staging and conversions).
struct Scratch {
    void  *ptr = nullptr;
    size_t bytes = 0;
};

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(const CudaPaths &paths) : paths_(paths) {}
    ~CudaBackend() override
    {
        if (stream_) cudaStreamSynchronize(stream_);
        for (Scratch &s : scratch_)
            if (s.ptr) cudaFree(s.ptr);
        if (cublas_) cublasDestroy(cublas_);
        if (stream_) cudaStreamDestroy(stream_);
    }

    bool init(std::string &err)
    {
        int n_dev = 0;
        cudaError_t e = cudaGetDeviceCount(&n_dev);
        if (e != cudaSuccess || n_dev == 0) {
            err = std::string("cuda backend: no CUDA device (") +
                  (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices") + ")";
            return false;
        }
        if ((e = cudaStreamCreate(&stream_)) != cudaSuccess) {
            err = std::string("cuda backend: cudaStreamCreate: ") + cudaGetErrorString(e);
            return false;
        }
        if (cublasCreate(&cublas_) != CUBLAS_STATUS_SUCCESS ||
            cublasSetStream(cublas_, stream_) != CUBLAS_STATUS_SUCCESS) {
            err = "cuda backend: cuBLAS initialisation failed";
            return false;
        }
        return true;
    }

    const char *name() const override { return VLM_CUDA_EMULATED ? "cuda-emu" : "cuda"; }

    bool supports(const OpQuery &q) const override
    {
        if (q.op == Op::Attention && q.head_dim > kern::kAttentionMaxHeadDim) return false;
        if (q.op == Op::Matmul && dtype_is_quantized(q.dtype)) return true;  // gemv_quant.cu, dequant_quant.cu
        return Backend::supports(q);
    }

    // bf16/f16 w above the GEMV's rows: x rounded to w's dtype for cuBLAS.
    // Q8/Q4 w above them: x rounded to bf16 and w dequantized to bf16 (not
    // the int8 blocks of core/quant.h's product).
    bool matmul_rounds_x(DType w, int64_t n, int64_t) const override
    {
        return w != DType::F32 && n > paths_.gemv_max_rows;
    }

    bool recover(std::string &err) override
    {
        if (!failed()) return true;
        // Queued work finishes (or fails), a transient error is read and
        // cleared; a sticky one survives that and fails the probe again.
        cudaStreamSynchronize(stream_);
        cudaGetLastError();
        const cudaError_t probe = cudaStreamSynchronize(stream_);
        const cudaError_t last = cudaGetLastError();
        if (probe != cudaSuccess || last != cudaSuccess) {
            const cudaError_t e = probe != cudaSuccess ? probe : last;
            err = std::string(name()) + " backend: device lost after \"" + fault_message() +
                  "\": " + cuda_error_text(e) + " persists; restart the process";
            return false;
        }
        clear_fault();
        return true;
    }

    void *alloc(size_t bytes) override
    {
        void *p = nullptr;
        size_t rounded = (bytes + 63) / 64 * 64;
        if (rounded < bytes) return nullptr;
        if (rounded == 0) rounded = 64;
        if (cudaMalloc(&p, rounded) != cudaSuccess) {
            cudaGetLastError();  // clear the sticky out-of-memory status
            return nullptr;
        }
        if (!ok(cudaMemsetAsync(p, 0, rounded, stream_), "alloc: cudaMemsetAsync")) {
            cudaFree(p);
            return nullptr;
        }
        return p;
    }
    void free(void *ptr) override
    {
        if (!ptr) return;
        // Both calls run even on a failed device, so nothing leaks.
        ok(cudaStreamSynchronize(stream_), "free: cudaStreamSynchronize");
        ok(cudaFree(ptr), "free: cudaFree");
    }
    void upload(void *dst, const void *src, size_t bytes) override
    {
        if (bytes) ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload: cudaMemcpyAsync");
    }
    void download(void *dst, const void *src, size_t bytes) override
    {
        if (bytes && !ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download: cudaMemcpyAsync"))
            return;
        ok(cudaStreamSynchronize(stream_), "download: cudaStreamSynchronize");
    }
    void synchronize() override { ok(cudaStreamSynchronize(stream_), "synchronize"); }

protected:
    void run_copy(const Tensor &src, Tensor &dst) override
    {
        launched(kern::launch_copy_rows({src, dst}, stream_, err_), "copy");
    }

    void run_matmul(const Tensor &x, const Tensor &w, const Tensor *bias, Tensor &y) override
    {
        if (dtype_is_quantized(w.dtype)) {
            run_matmul_quant(x, w, bias, y);
            return;
        }
        if (x.rows <= paths_.gemv_max_rows) {
            kern::GemvParams p{x, w, y, bias ? *bias : Tensor{}};
            launched(kern::launch_gemv(p, stream_, err_), "matmul");
            return;
        }
        const void *b_ptr = x.data;
        int ldb = int(x.stride);
        cudaDataType ab_type = CUDA_R_32F;
        if (w.dtype == DType::BF16 || w.dtype == DType::F16) {
            // cuBLAS wants both operands in one dtype: round x to w's.
            Tensor xc;
            xc.dtype = w.dtype;
            xc.rows = x.rows;
            xc.cols = x.cols;
            xc.stride = x.cols;
            xc.data = scratch(kScratchConvert, size_t(x.rows) * size_t(x.cols) * 2);
            if (!xc.data || !launched(kern::launch_convert({x, xc}, stream_, err_), "matmul")) return;
            b_ptr = xc.data;
            ldb = int(x.cols);
            ab_type = w.dtype == DType::BF16 ? CUDA_R_16BF : CUDA_R_16F;
        }
        float beta = 0.0f;
        if (bias) {
            if (!launched(kern::launch_bias_rows({*bias, y}, stream_, err_), "matmul")) return;
            beta = 1.0f;
        }
        const float alpha = 1.0f;
        // Row-major y = x w^T is column-major y^T (m x n) = op(W) (m x k) x^T (k x n),
        // with W stored column-major as k x m (ld = w.stride), so op(W) = T.
        // Sizes fit in int: the checked front bounds every dimension by 2^31.
        cublasStatus_t st = cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(w.rows), int(x.rows),
                                         int(x.cols), &alpha, w.data, ab_type, int(w.stride), b_ptr,
                                         ab_type, ldb, &beta, y.data, CUDA_R_32F, int(y.stride),
                                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS)
            record_fault(BackendFault::Device, std::string("matmul: cublasGemmEx: ") + cublasGetStatusString(st));
    }

    // Q8/Q4 w: gemv_quant.cu for few rows; else w to bf16 in chunks of rows
    // (dequant_quant.cu into one reused, grow-only scratch buffer of at most
    // paths_.dequant_max_weights weights, or one row) and a bf16 GEMM per
    // chunk into y's matching columns, the bias written into y first.
    void run_matmul_quant(const Tensor &x, const Tensor &w, const Tensor *bias, Tensor &y)
    {
        if (x.rows <= paths_.gemv_max_rows) {
            kern::GemvQuantParams p{x, w, y, bias ? *bias : Tensor{}, nullptr};
            const size_t ws = kern::gemv_quant_workspace_bytes(x.rows, x.cols);
            p.workspace = scratch(kScratchQuantX, std::max<size_t>(ws, 1));
            if (!p.workspace) return;
            launched(kern::launch_gemv_quant(p, stream_, err_), "matmul");
            return;
        }
        Tensor xc;
        xc.dtype = DType::BF16;
        xc.rows = x.rows;
        xc.cols = x.cols;
        xc.stride = x.cols;
        xc.data = scratch(kScratchConvert, std::max<size_t>(size_t(x.rows) * size_t(x.cols) * 2, 1));
        if (!xc.data || !launched(kern::launch_convert({x, xc}, stream_, err_), "matmul")) return;
        float beta = 0.0f;
        if (bias) {
            if (!launched(kern::launch_bias_rows({*bias, y}, stream_, err_), "matmul")) return;
            beta = 1.0f;
        }
        // k = 0 (stride 0) is legal: no chunking then, and cuBLAS wants ld >= 1.
        const int64_t ldw = std::max<int64_t>(w.stride, 1);
        const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(w.rows, paths_.dequant_max_weights / ldw));
        const size_t wd_bytes = std::max<size_t>(size_t(chunk) * size_t(w.stride) * 2, 1);
        auto *wd = static_cast<uint16_t *>(scratch(kScratchDequant, wd_bytes));
        if (!wd) return;
        const float alpha = 1.0f;
        for (int64_t r0 = 0; r0 < w.rows; r0 += chunk) {
            const int64_t rows = std::min(chunk, w.rows - r0);
            if (!launched(kern::launch_dequant_quant({w, r0, rows, wd}, stream_, err_), "matmul")) return;
            // As run_matmul: y^T (rows x n) = op(W_chunk) x^T, W_chunk column-major
            // k x rows with ld = w.stride (the padded width), into y's columns
            // [r0, r0 + rows).
            cublasStatus_t st = cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(x.rows), int(x.cols),
                                             &alpha, wd, CUDA_R_16BF, int(ldw), xc.data, CUDA_R_16BF,
                                             int(std::max<int64_t>(x.cols, 1)), &beta,
                                             static_cast<float *>(y.data) + r0, CUDA_R_32F, int(y.stride),
                                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            if (st != CUBLAS_STATUS_SUCCESS) {
                record_fault(BackendFault::Device, std::string("matmul: cublasGemmEx: ") + cublasGetStatusString(st));
                return;
            }
        }
    }

    void run_rms_norm(const Tensor &x, const Tensor &w, float eps, Tensor &y) override
    {
        launched(kern::launch_rms_norm({x, w, y, eps}, stream_, err_), "rms_norm");
    }

    void run_layer_norm(const Tensor &x, const Tensor &w, const Tensor &b, float eps, Tensor &y) override
    {
        launched(kern::launch_layer_norm({x, w, b, y, eps}, stream_, err_), "layer_norm");
    }

    void run_add(const Tensor &a, const Tensor &b, Tensor &y) override
    {
        launched(kern::launch_add({a, b, y}, stream_, err_), "add");
    }

    void run_silu_mul(const Tensor &gate, const Tensor &up, Tensor &y) override
    {
        launched(kern::launch_silu_mul({gate, up, y}, stream_, err_), "silu_mul");
    }

    void run_gelu(const Tensor &x, Tensor &y) override
    {
        launched(kern::launch_gelu({x, y}, stream_, err_), "gelu");
    }

    void run_embed(const Tensor &table, const int32_t *ids, int64_t n, Tensor &y) override
    {
        const int32_t *d_ids = stage_ints(kScratchInts0, ids, size_t(n));
        if (!d_ids) return;
        launched(kern::launch_embed({table, y, d_ids, n}, stream_, err_), "embed");
    }

    void run_rope_text(Tensor &x, const int32_t *positions, const TextRopeParams &rp) override
    {
        std::vector<float> inv(size_t(rp.rotary_dim / 2));
        rope_inv_freq(rp.theta, rp.rotary_dim, inv.data());
        kern::RopeTextParams p;
        p.x = x;
        p.positions = stage_ints(kScratchInts0, positions, size_t(x.rows) * 3);
        p.inv_freq = stage_floats(inv);
        p.rope = rp;
        if (!p.positions || !p.inv_freq) return;
        launched(kern::launch_rope_text(p, stream_, err_), "rope_text");
    }

    void run_rope_vision(Tensor &x, const int32_t *row, const int32_t *col, int n_head, int head_dim,
                         double theta) override
    {
        std::vector<float> inv(size_t(head_dim / 4));
        rope_inv_freq(theta, head_dim / 2, inv.data());
        kern::RopeVisionParams p;
        p.x = x;
        p.row = stage_ints(kScratchInts0, row, size_t(x.rows));
        p.col = stage_ints(kScratchInts1, col, size_t(x.rows));
        p.inv_freq = stage_floats(inv);
        p.n_head = n_head;
        p.head_dim = head_dim;
        if (!p.row || !p.col || !p.inv_freq) return;
        launched(kern::launch_rope_vision(p, stream_, err_), "rope_vision");
    }

    void run_attention(const Tensor &q, const Tensor &k, const Tensor &v, const AttentionParams &ap,
                       Tensor &out) override
    {
        kern::AttentionKernelParams p{q, k, v, out, ap, nullptr, nullptr, nullptr};
        if (!ap.causal && ap.n_segments > 0) {
            // Block-diagonal segments become per-row key ranges.
            std::vector<int32_t> lo(size_t(q.rows)), hi(size_t(q.rows));
            int64_t start = 0;
            for (int s = 0; s < ap.n_segments; s++) {
                for (int64_t i = start; i < start + ap.segments[s]; i++) {
                    lo[size_t(i)] = int32_t(start);
                    hi[size_t(i)] = int32_t(start + ap.segments[s]);
                }
                start += ap.segments[s];
            }
            p.row_lo = stage_ints(kScratchInts0, lo.data(), lo.size());
            p.row_hi = stage_ints(kScratchInts1, hi.data(), hi.size());
            if (!p.row_lo || !p.row_hi) return;
        }
        bool launch_ok;
        if (q.rows <= paths_.decode_max_rows) {
            const size_t ws = paths_.split_kv ? kern::attention_decode_workspace_floats(p) : 0;
            if (ws) {
                p.workspace = static_cast<float *>(scratch(kScratchAttention, ws * sizeof(float)));
                if (!p.workspace) return;
            }
            launch_ok = kern::launch_attention_decode(p, stream_, err_);
        } else {
            launch_ok = kern::launch_attention_prefill(p, stream_, err_);
        }
        launched(launch_ok, "attention");
    }

    void run_add_pos_embed_bicubic(const Tensor &table, int side, const int32_t *row, const int32_t *col,
                                   const int32_t *grid_h, const int32_t *grid_w, Tensor &y) override
    {
        const size_t n = size_t(y.rows);
        kern::PosEmbedParams p;
        p.table = table;
        p.y = y;
        p.side = side;
        p.row = stage_ints(kScratchInts0, row, n);
        p.col = stage_ints(kScratchInts1, col, n);
        p.grid_h = stage_ints(kScratchInts2, grid_h, n);
        p.grid_w = stage_ints(kScratchInts3, grid_w, n);
        if (!p.row || !p.col || !p.grid_h || !p.grid_w) return;
        launched(kern::launch_pos_embed_bicubic(p, stream_, err_), "add_pos_embed_bicubic");
    }

private:
    enum { kScratchInts0, kScratchInts1, kScratchInts2, kScratchInts3, kScratchFloats, kScratchConvert,
           kScratchAttention, kScratchQuantX, kScratchDequant, kScratchCount };

    // CUDA_CHECK: a failed call is the backend's Device fault (first one wins).
    bool ok(cudaError_t e, const char *what)
    {
        if (e == cudaSuccess) return true;
        record_fault(BackendFault::Device, std::string(what) + ": " + cuda_error_text(e));
        return false;
    }

    // A launcher's result: false + err_ (the launch status) is a Device fault.
    bool launched(bool launch_ok, const char *op)
    {
        if (launch_ok) return true;
        record_fault(BackendFault::Device, std::string(op) + ": " + err_);
        return false;
    }

    // Scratch `slot` of at least `bytes`; nullptr (and a fault) when the
    // device cannot provide it.
    void *scratch(int slot, size_t bytes)
    {
        Scratch &s = scratch_[slot];
        if (s.bytes < bytes) {
            if (s.ptr) {
                if (!ok(cudaStreamSynchronize(stream_), "scratch: cudaStreamSynchronize")) return nullptr;
                ok(cudaFree(s.ptr), "scratch: cudaFree");
                s.ptr = nullptr;
                s.bytes = 0;
            }
            size_t want = std::max<size_t>(bytes, 2 * s.bytes);
            if (!ok(cudaMalloc(&s.ptr, want), "scratch: cudaMalloc")) {
                s.ptr = nullptr;
                return nullptr;
            }
            s.bytes = want;
        }
        return s.ptr;
    }

    // Copies n host ints into scratch `slot`, ordered on the stream after
    // every earlier op (which may still be reading the previous contents).
    const int32_t *stage_ints(int slot, const int32_t *host, size_t n)
    {
        void *d = scratch(slot, std::max<size_t>(n, 1) * sizeof(int32_t));
        if (!d || (n && !ok(cudaMemcpyAsync(d, host, n * sizeof(int32_t), cudaMemcpyHostToDevice, stream_),
                            "staging: cudaMemcpyAsync")))
            return nullptr;
        return static_cast<const int32_t *>(d);
    }

    const float *stage_floats(const std::vector<float> &v)
    {
        void *d = scratch(kScratchFloats, std::max<size_t>(v.size(), 1) * sizeof(float));
        if (!d || (!v.empty() && !ok(cudaMemcpyAsync(d, v.data(), v.size() * sizeof(float),
                                                     cudaMemcpyHostToDevice, stream_),
                                     "staging: cudaMemcpyAsync")))
            return nullptr;
        return static_cast<const float *>(d);
    }

    CudaPaths paths_;
    cudaStream_t stream_ = nullptr;
    cublasHandle_t cublas_ = nullptr;
    Scratch scratch_[kScratchCount];
    std::string err_;  // the last launcher's reason
};

}  // namespace

bool cuda_backend_is_emulated() { return VLM_CUDA_EMULATED != 0; }

std::unique_ptr<Backend> make_cuda_backend_paths(bool emulated, const CudaPaths &paths, std::string &err)
{
    if (emulated != cuda_backend_is_emulated()) {
        err = emulated ? "cuda-emu backend: this build runs the real CUDA runtime (use 'cuda')"
                       : "cuda backend: this build has no nvcc/CUDA runtime, only the emulator (use 'cuda-emu')";
        return nullptr;
    }
    if (paths.gemv_max_rows < 0 || paths.gemv_max_rows > kern::kGemvMaxRows || paths.decode_max_rows < 0 ||
        paths.decode_max_rows > 65535 || paths.dequant_max_weights < 1) {
        err = "cuda backend: paths out of range (gemv_max_rows 0..16, decode_max_rows 0..65535, "
              "dequant_max_weights >= 1)";
        return nullptr;
    }
    auto b = std::make_unique<CudaBackend>(paths);
    if (!b->init(err)) return nullptr;
    return b;
}

std::unique_ptr<Backend> make_cuda_backend(bool emulated, const BackendOptions &opt, std::string &err)
{
    (void)opt;
    return make_cuda_backend_paths(emulated, CudaPaths{}, err);
}

}  // namespace vlm
