// backend_cuda.cpp: the CUDA backend. Device memory from cudaMalloc, weights
// uploaded once (Backend's default adopt_weight), activations f32 on the
// device, everything on one stream. Matrix products: n <= 16 rows go to our
// GEMV (f32 math on any weight dtype, like the cpu backend's small-n path);
// larger ones to cublasGemmEx, f32 weights in f32, bf16/f16 weights with the
// activations rounded to the weight dtype first (fp32 accumulation), the bias
// written into y beforehand and accumulated with beta = 1. Every other op is
// one kernel from kernels/*.cu. Host arrays that ops receive (token ids,
// positions, segment lengths) are staged into reusable device buffers with
// stream-ordered copies, so no op blocks the host; download() synchronises.
// Leaves out CUDA graph capture of decode steps: the model issues host
// uploads and per-step pointer/offset changes (the KV-cache row, kv_offset)
// on every call, so a captured graph would need its kernel parameters updated
// per step; see README.md. A CUDA error inside an op is a bug or a lost
// device: the op reports it on stderr and aborts rather than return wrong
// tokens (the Backend interface has no error return for ops).
#include "cuda_compat.h"
#include "backend_cuda.h"
#include "core/cpu_ops_ref.h"
#include "kernels.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace vlm {
namespace {

[[noreturn]] void fatal(const std::string &what)
{
    std::fprintf(stderr, "vlm cuda backend: %s\n", what.c_str());
    std::abort();
}

void check_cuda(cudaError_t e, const char *what)
{
    if (e != cudaSuccess) fatal(std::string(what) + ": " + cudaGetErrorString(e));
}

void check_kernel(bool ok, const std::string &err)
{
    if (!ok) fatal(err);
}

// A device buffer that only grows (scratch for staging and conversions).
struct Scratch {
    void  *ptr = nullptr;
    size_t bytes = 0;
};

class CudaBackend final : public Backend {
public:
    CudaBackend() = default;
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
        check_cuda(cudaMemsetAsync(p, 0, rounded, stream_), "cudaMemsetAsync");
        return p;
    }
    void free(void *ptr) override
    {
        if (!ptr) return;
        check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
        check_cuda(cudaFree(ptr), "cudaFree");
    }
    void upload(void *dst, const void *src, size_t bytes) override
    {
        if (bytes) check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload");
    }
    void download(void *dst, const void *src, size_t bytes) override
    {
        if (bytes) check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download");
        check_cuda(cudaStreamSynchronize(stream_), "download sync");
    }
    void synchronize() override { check_cuda(cudaStreamSynchronize(stream_), "synchronize"); }

    void copy(const Tensor &src, Tensor &dst) override
    {
        std::string err;
        check_kernel(kern::launch_copy_rows({src, dst}, stream_, err), err);
    }

    void matmul(const Tensor &x, const Tensor &w, const Tensor *bias, Tensor &y) override
    {
        std::string err;
        if (x.rows <= kern::kGemvMaxRows) {
            kern::GemvParams p{x, w, y, bias ? *bias : Tensor{}};
            check_kernel(kern::launch_gemv(p, stream_, err), err);
            return;
        }
        if (x.rows > 0x7fffffff || w.rows > 0x7fffffff || x.cols > 0x7fffffff || y.stride > 0x7fffffff)
            fatal("matmul: dimensions exceed cuBLAS's int range");
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
            check_kernel(kern::launch_convert({x, xc}, stream_, err), err);
            b_ptr = xc.data;
            ldb = int(x.cols);
            ab_type = w.dtype == DType::BF16 ? CUDA_R_16BF : CUDA_R_16F;
        } else if (w.dtype != DType::F32) {
            fatal(std::string("matmul: unsupported weight dtype ") + dtype_name(w.dtype));
        }
        float beta = 0.0f;
        if (bias) {
            check_kernel(kern::launch_bias_rows({*bias, y}, stream_, err), err);
            beta = 1.0f;
        }
        const float alpha = 1.0f;
        // Row-major y = x w^T is column-major y^T (m x n) = op(W) (m x k) x^T (k x n),
        // with W stored column-major as k x m (ld = w.stride), so op(W) = T.
        cublasStatus_t st = cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(w.rows), int(x.rows),
                                         int(x.cols), &alpha, w.data, ab_type, int(w.stride), b_ptr,
                                         ab_type, ldb, &beta, y.data, CUDA_R_32F, int(y.stride),
                                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS) fatal(std::string("cublasGemmEx: ") + cublasGetStatusString(st));
    }

    void rms_norm(const Tensor &x, const Tensor &w, float eps, Tensor &y) override
    {
        std::string err;
        check_kernel(kern::launch_rms_norm({x, w, y, eps}, stream_, err), err);
    }

    void layer_norm(const Tensor &x, const Tensor &w, const Tensor &b, float eps, Tensor &y) override
    {
        std::string err;
        check_kernel(kern::launch_layer_norm({x, w, b, y, eps}, stream_, err), err);
    }

    void add(const Tensor &a, const Tensor &b, Tensor &y) override
    {
        std::string err;
        check_kernel(kern::launch_add({a, b, y}, stream_, err), err);
    }

    void silu_mul(const Tensor &gate, const Tensor &up, Tensor &y) override
    {
        std::string err;
        check_kernel(kern::launch_silu_mul({gate, up, y}, stream_, err), err);
    }

    void gelu(const Tensor &x, Tensor &y) override
    {
        std::string err;
        check_kernel(kern::launch_gelu({x, y}, stream_, err), err);
    }

    void embed(const Tensor &table, const int32_t *ids, int64_t n, Tensor &y) override
    {
        std::string err;
        kern::EmbedParams p{table, y, stage_ints(kScratchInts0, ids, size_t(n)), n};
        check_kernel(kern::launch_embed(p, stream_, err), err);
    }

    void rope_text(Tensor &x, const int32_t *positions, const TextRopeParams &rp) override
    {
        std::string err;
        std::vector<float> inv(size_t(rp.rotary_dim / 2));
        rope_inv_freq(rp.theta, rp.rotary_dim, inv.data());
        kern::RopeTextParams p;
        p.x = x;
        p.positions = stage_ints(kScratchInts0, positions, size_t(x.rows) * 3);
        p.inv_freq = stage_floats(inv);
        p.rope = rp;
        check_kernel(kern::launch_rope_text(p, stream_, err), err);
    }

    void rope_vision(Tensor &x, const int32_t *row, const int32_t *col, int n_head, int head_dim,
                     double theta) override
    {
        std::string err;
        std::vector<float> inv(size_t(head_dim / 4));
        rope_inv_freq(theta, head_dim / 2, inv.data());
        kern::RopeVisionParams p;
        p.x = x;
        p.row = stage_ints(kScratchInts0, row, size_t(x.rows));
        p.col = stage_ints(kScratchInts1, col, size_t(x.rows));
        p.inv_freq = stage_floats(inv);
        p.n_head = n_head;
        p.head_dim = head_dim;
        check_kernel(kern::launch_rope_vision(p, stream_, err), err);
    }

    void attention(const Tensor &q, const Tensor &k, const Tensor &v, const AttentionParams &ap,
                   Tensor &out) override
    {
        std::string err;
        kern::AttentionKernelParams p{q, k, v, out, ap, nullptr, nullptr, nullptr};
        if (!ap.causal && ap.n_segments > 0) {
            // Block-diagonal segments become per-row key ranges.
            std::vector<int32_t> lo(size_t(q.rows)), hi(size_t(q.rows));
            int64_t start = 0;
            for (int s = 0; s < ap.n_segments; s++) {
                for (int64_t i = start; i < start + ap.segments[s] && i < q.rows; i++) {
                    lo[size_t(i)] = int32_t(start);
                    hi[size_t(i)] = int32_t(start + ap.segments[s]);
                }
                start += ap.segments[s];
            }
            p.row_lo = stage_ints(kScratchInts0, lo.data(), lo.size());
            p.row_hi = stage_ints(kScratchInts1, hi.data(), hi.size());
        }
        bool ok;
        if (q.rows <= kDecodeMaxRows) {
            const size_t ws = kern::attention_decode_workspace_floats(p);
            if (ws) p.workspace = static_cast<float *>(scratch(kScratchAttention, ws * sizeof(float)));
            ok = kern::launch_attention_decode(p, stream_, err);
        } else {
            ok = kern::launch_attention_prefill(p, stream_, err);
        }
        check_kernel(ok, err);
    }

    void add_pos_embed_bicubic(const Tensor &table, int side, const int32_t *row, const int32_t *col,
                               const int32_t *grid_h, const int32_t *grid_w, Tensor &y) override
    {
        std::string err;
        const size_t n = size_t(y.rows);
        kern::PosEmbedParams p;
        p.table = table;
        p.y = y;
        p.side = side;
        p.row = stage_ints(kScratchInts0, row, n);
        p.col = stage_ints(kScratchInts1, col, n);
        p.grid_h = stage_ints(kScratchInts2, grid_h, n);
        p.grid_w = stage_ints(kScratchInts3, grid_w, n);
        check_kernel(kern::launch_pos_embed_bicubic(p, stream_, err), err);
    }

private:
    // Query rows up to which the decode attention kernel (one block per
    // head and row) beats the tiled prefill kernel.
    static constexpr int64_t kDecodeMaxRows = 4;
    enum { kScratchInts0, kScratchInts1, kScratchInts2, kScratchInts3, kScratchFloats, kScratchConvert,
           kScratchAttention, kScratchCount };

    void *scratch(int slot, size_t bytes)
    {
        Scratch &s = scratch_[slot];
        if (s.bytes < bytes) {
            if (s.ptr) {
                check_cuda(cudaStreamSynchronize(stream_), "scratch sync");
                check_cuda(cudaFree(s.ptr), "cudaFree");
                s.ptr = nullptr;
            }
            size_t want = std::max<size_t>(bytes, 2 * s.bytes);
            check_cuda(cudaMalloc(&s.ptr, want), "cudaMalloc scratch");
            s.bytes = want;
        }
        return s.ptr;
    }

    // Copies n host ints into scratch `slot`, ordered on the stream after
    // every earlier op (which may still be reading the previous contents).
    const int32_t *stage_ints(int slot, const int32_t *host, size_t n)
    {
        void *d = scratch(slot, std::max<size_t>(n, 1) * sizeof(int32_t));
        upload(d, host, n * sizeof(int32_t));
        return static_cast<const int32_t *>(d);
    }

    const float *stage_floats(const std::vector<float> &v)
    {
        void *d = scratch(kScratchFloats, std::max<size_t>(v.size(), 1) * sizeof(float));
        upload(d, v.data(), v.size() * sizeof(float));
        return static_cast<const float *>(d);
    }

    cudaStream_t stream_ = nullptr;
    cublasHandle_t cublas_ = nullptr;
    Scratch scratch_[kScratchCount];
};

}  // namespace

bool cuda_backend_is_emulated() { return VLM_CUDA_EMULATED != 0; }

std::unique_ptr<Backend> make_cuda_backend(bool emulated, const BackendOptions &opt, std::string &err)
{
    (void)opt;
    if (emulated != cuda_backend_is_emulated()) {
        err = emulated ? "cuda-emu backend: this build runs the real CUDA runtime (use 'cuda')"
                       : "cuda backend: this build has no nvcc/CUDA runtime, only the emulator (use 'cuda-emu')";
        return nullptr;
    }
    auto b = std::make_unique<CudaBackend>();
    if (!b->init(err)) return nullptr;
    return b;
}

}  // namespace vlm
