// op_suite.h: every backend op against its plain reference (core/cpu_ops_ref.h),
// from one table of cases, as ggml's tests/test-backend-ops.cpp. A case is a
// struct with printable parameters, a builder (the tensors, with their
// strides and views, and the host index arrays) and a tolerance; the runner
// makes the tensors twice with one layout (on the host for the reference, on
// the backend for the op), runs both, and compares every element of every
// tensor the op writes, padding included: an element outside the output view
// that changed, or one the op did not write (outputs start as NaN), fails.
// The same table runs on every backend: the unit test runs it on each cpu
// kernel path and on cuda-emu with each kernel choice forced
// (tests/unit/test_backend_ops.cpp), and `vlm-run --backend cuda --selftest`
// runs it on a real GPU (tools/cuda_selftest.cpp). A new op is one struct in
// op_suite.cpp and its lines in the table.
//
// Tolerances (inputs uniform in [-scale, scale), scales 1..6; weights BF16 and
// F16 are exact in f32 once widened, so a weight dtype changes no bound except
// where a backend rounds activations to it):
//  - copy, embed, add: bit-exact (0). Data movement, or one f32 rounding the
//    reference does identically.
//  - gelu, silu_mul: 2e-6 (abs) + 2e-6 |ref|: one exp or erf in f32 against
//    the reference's (erf in double), a few ulp.
//  - rms_norm, layer_norm, rope_text, rope_vision, add_pos_embed_bicubic:
//    2e-5 + 2e-5 |ref|: f32 row sums in lanes or trees against the
//    reference's double sums (norms, over up to 1100 columns of values near
//    10), f32 sin/cos of angles up to 3000 rad from another libm or the
//    device's, and the bicubic taps' fused multiply-adds in another order.
//  - matmul: 1e-5 * sum_c |x_c w_c| (+ |bias|) per output: an f32 dot
//    product of length k in any summation order stays within ~sqrt(k) ulp
//    of that magnitude (the relative bound is the honest one: outputs may
//    cancel to near 0). A backend whose matmul_rounds_x() says it rounds the
//    activations to the weight dtype (cuBLAS bf16/f16 GEMM, AVX-512
//    vdpbf16ps) is compared with the reference run on the rounded
//    activations, at the same bound.
//  - attention: 4e-6 + 1e-5 |ref|: the outputs are convex combinations of
//    values |v| <= 1 that may cancel, so the absolute part is relative to
//    that scale; f32 online softmax (running max, rescaled sums) against the
//    reference's double sums.
// Every case prints its max abs diff, its NMSE (sum (b - r)^2 / sum r^2) and
// its worst diff as a fraction of the allowed one.
#pragma once

#include "core/backend.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace vlm {

// The tensors of one case, made twice with one layout: host memory for the
// reference, backend memory for the op (same bytes uploaded).
class CaseTensors {
public:
    CaseTensors(Backend &b, uint64_t seed);
    ~CaseTensors();
    CaseTensors(const CaseTensors &) = delete;
    CaseTensors &operator=(const CaseTensors &) = delete;

    // A (rows, cols) tensor whose rows are `stride` apart (stride > cols: a
    // strided view of a wider allocation), filled, padding included, with
    // offset + uniform [-scale, scale).
    int input(DType dt, int64_t rows, int64_t cols, int64_t stride, float scale = 1.0f,
              float offset = 0.0f);
    // A tensor the op writes: NaN everywhere first, compared after the op.
    int output(DType dt, int64_t rows, int64_t cols, int64_t stride);
    // An input the op updates (in place or accumulating): compared after.
    int inout(DType dt, int64_t rows, int64_t cols, int64_t stride, float scale = 1.0f);
    // Rows [r0, r0 + rows) x columns [c0, c0 + cols) of tensor `of`, sharing
    // its memory (gate and up of a fused projection, a KV-cache row range).
    // Not compared itself: compare `of`.
    int view(int of, int64_t r0, int64_t rows, int64_t c0, int64_t cols);

    Tensor host(int h) const;
    Tensor dev(int h) const;
    // Host arrays for a case's index inputs; the same generator as the tensors.
    float uniform();                  // [-1, 1)
    int32_t below(int32_t n);         // [0, n)

private:
    friend class OpCase;
    struct Buf;
    Backend &b_;
    uint64_t rng_;
    std::vector<std::unique_ptr<Buf>> bufs_;
};

// One side of a case: the backend's tensors, or the host copies the
// reference runs on.
struct CaseSide {
    const CaseTensors *t = nullptr;
    bool reference = false;
    Tensor operator[](int h) const { return reference ? t->host(h) : t->dev(h); }
};

struct CaseResult {
    enum Status { Pass, Fail, Skip } status = Pass;
    double max_abs = 0;  // largest |backend - reference|
    double nmse = 0;     // sum (backend - reference)^2 / sum reference^2
    double worst = 0;    // largest |diff| / allowed (<= 1 passes)
    std::string detail;  // Skip: why; Fail: the first bad element or the backend's fault
};

class OpCase {
public:
    virtual ~OpCase() = default;
    virtual Op op() const = 0;
    // The case's parameters, printable ("w=BF16 n=17 m=33 k=258 bias ...").
    virtual std::string params() const = 0;
    // What supports() is asked; a backend that says no skips the case.
    virtual OpQuery query() const { return OpQuery{op(), DType::F32, 0}; }
    std::string name() const { return std::string(op_name(op())) + " " + params(); }

    // Builds fresh tensors on `b`, runs the op and the reference, compares.
    CaseResult run(Backend &b);

protected:
    // Makes the case's tensors and host arrays (called once per run).
    virtual void build(CaseTensors &t) = 0;
    // Runs the op on `b` (s.reference false) or the reference on the host
    // copies (s.reference true; `b` answers questions such as
    // matmul_rounds_x).
    virtual void compute(Backend &b, const CaseSide &s) = 0;
    // |backend - reference| allowed at element (r, c) of compared tensor h.
    virtual double allowed(int h, int64_t r, int64_t c, double ref) const;

    double abs_tol_ = 0, rel_tol_ = 0;  // the default allowed(): abs + rel * |ref|
};

using OpCases = std::vector<std::unique_ptr<OpCase>>;

// The table: every op, every weight dtype, odd sizes, strided views, each
// kernel's size classes (GEMV rows, attention decode / split-KV / prefill
// tiles, float4 and scalar element-wise paths).
OpCases op_suite_cases();

struct SuiteTotals {
    int pass = 0, fail = 0, skip = 0;
};

// Runs the cases of `ops` (all when empty) on `b`. Prints to `out` one line
// per case when `verbose`, else only failures and skips, then one summary
// line per op (cases, worst diff, worst fraction of the tolerance).
SuiteTotals run_op_suite(Backend &b, const OpCases &cases, const std::string &label,
                         const std::vector<Op> &ops, bool verbose, FILE *out);

}  // namespace vlm
