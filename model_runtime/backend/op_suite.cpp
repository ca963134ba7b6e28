// op_suite.cpp: the op table of op_suite.h: the case machinery (tensors on
// both sides, the element-by-element comparison), one struct per op, the
// table of cases and the runner.
#include "backend/op_suite.h"

#include "core/cpu_ops_ref.h"
#include "core/quant.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstring>
#include <map>

namespace vlm {

// ---- tensors on both sides ----------------------------------------------------

struct CaseTensors::Buf {
    std::vector<uint8_t> bytes;  // host copy of the whole allocation (roots only)
    DeviceBuffer dev;            // the allocation on the backend (roots only)
    Tensor host, devt;           // the tensor itself (a view for views)
    int root = -1;               // views: the tensor they look into
    bool compared = false;       // written by the op: compared afterwards
};

namespace {

void store(void *base, DType dt, size_t i, float v)
{
    switch (dt) {
    case DType::F32: static_cast<float *>(base)[i] = v; break;
    case DType::BF16: static_cast<uint16_t *>(base)[i] = f32_to_bf16(v); break;
    case DType::F16: static_cast<uint16_t *>(base)[i] = f32_to_f16(v); break;
    case DType::I32: static_cast<int32_t *>(base)[i] = int32_t(v); break;
    case DType::Q8:
    case DType::Q4: break;  // quantized operands are made by quantize_rows, never stored element-wise
    }
}

void store_nan(void *base, DType dt, size_t i)
{
    switch (dt) {
    case DType::F32: static_cast<uint32_t *>(base)[i] = 0x7fc00000u; break;
    case DType::BF16: static_cast<uint16_t *>(base)[i] = 0x7fc0; break;
    case DType::F16: static_cast<uint16_t *>(base)[i] = 0x7e00; break;
    case DType::I32: static_cast<int32_t *>(base)[i] = -1; break;
    case DType::Q8:
    case DType::Q4: break;
    }
}

uint64_t fnv1a(const std::string &s)
{
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char *f, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

const char *dt(DType d) { return dtype_name(d); }

// ", stride S" when a tensor is a strided view.
std::string stride_note(const char *name, int64_t cols, int64_t stride)
{
    return stride == cols ? std::string() : fmt(" %s_stride=%lld", name, (long long)stride);
}

}  // namespace

CaseTensors::CaseTensors(Backend &b, uint64_t seed) : b_(b), rng_(seed * 6364136223846793005ull + 1) {}

CaseTensors::~CaseTensors() = default;

float CaseTensors::uniform()
{
    rng_ = rng_ * 6364136223846793005ull + 1442695040888963407ull;
    return float(int32_t(rng_ >> 32)) / 2147483648.0f;
}

int32_t CaseTensors::below(int32_t n)
{
    rng_ = rng_ * 6364136223846793005ull + 1442695040888963407ull;
    return int32_t((rng_ >> 33) % uint64_t(n));
}

int CaseTensors::input(DType d, int64_t rows, int64_t cols, int64_t stride, float scale, float offset)
{
    auto buf = std::make_unique<Buf>();
    const size_t n = size_t(rows) * size_t(stride);
    buf->bytes.assign(std::max<size_t>(1, n * dtype_size(d)), 0);
    for (size_t i = 0; i < n; ++i) store(buf->bytes.data(), d, i, offset + scale * uniform());
    buf->dev = DeviceBuffer(b_, d, rows, stride);
    if (buf->dev.t.data && n) b_.upload(buf->dev.t.data, buf->bytes.data(), n * dtype_size(d));
    buf->host = Tensor{buf->bytes.data(), d, rows, cols, stride};
    buf->devt = Tensor{buf->dev.t.data, d, rows, cols, stride};
    bufs_.push_back(std::move(buf));
    return int(bufs_.size()) - 1;
}

int CaseTensors::output(DType d, int64_t rows, int64_t cols, int64_t stride)
{
    const int h = input(d, rows, cols, stride);
    Buf &buf = *bufs_[size_t(h)];
    const size_t n = size_t(rows) * size_t(stride);
    for (size_t i = 0; i < n; ++i) store_nan(buf.bytes.data(), d, i);
    if (buf.dev.t.data && n) b_.upload(buf.dev.t.data, buf.bytes.data(), n * dtype_size(d));
    buf.compared = true;
    return h;
}

int CaseTensors::inout(DType d, int64_t rows, int64_t cols, int64_t stride, float scale)
{
    const int h = input(d, rows, cols, stride, scale);
    bufs_[size_t(h)]->compared = true;
    return h;
}

int CaseTensors::view(int of, int64_t r0, int64_t rows, int64_t c0, int64_t cols)
{
    auto buf = std::make_unique<Buf>();
    const Buf &p = *bufs_[size_t(of)];
    buf->host = p.host.row_slice(r0, rows).col_slice(c0, cols);
    buf->devt = p.devt.row_slice(r0, rows).col_slice(c0, cols);
    buf->root = p.root >= 0 ? p.root : of;
    bufs_.push_back(std::move(buf));
    return int(bufs_.size()) - 1;
}

Tensor CaseTensors::host(int h) const { return bufs_[size_t(h)]->host; }
Tensor CaseTensors::dev(int h) const { return bufs_[size_t(h)]->devt; }

// ---- running and comparing ------------------------------------------------------

double OpCase::allowed(int, int64_t, int64_t, double ref) const { return abs_tol_ + rel_tol_ * std::fabs(ref); }

CaseResult OpCase::run(Backend &b)
{
    CaseResult res;
    const OpQuery q = query();
    if (!b.supports(q)) {
        res.status = CaseResult::Skip;
        res.detail = std::string("the ") + b.name() + " backend does not support " + op_name(q.op) +
                     (q.head_dim ? fmt(" with head_dim %d", q.head_dim) : fmt(" on %s operands", dt(q.dtype)));
        return res;
    }
    std::string err;
    if (!b.recover(err)) {
        res.status = CaseResult::Fail;
        res.detail = err;
        return res;
    }
    CaseTensors t(b, fnv1a(name()));
    build(t);
    compute(b, CaseSide{&t, false});
    b.synchronize();
    if (b.failed()) {  // refused or failed: the reference would run on the same arguments
        res.status = CaseResult::Fail;
        res.detail = std::string("backend fault: ") + b.fault_message();
        b.recover(err);
        return res;
    }
    compute(b, CaseSide{&t, true});
    double sum_d2 = 0, sum_r2 = 0;
    for (size_t h = 0; h < t.bufs_.size() && !b.failed(); ++h) {
        const CaseTensors::Buf &buf = *t.bufs_[h];
        if (!buf.compared) continue;
        const Tensor &ht = buf.host;
        const size_t n = size_t(ht.rows) * size_t(ht.stride), es = dtype_size(ht.dtype);
        std::vector<uint8_t> got(std::max<size_t>(1, n * es));
        if (n) b.download(got.data(), buf.devt.data, n * es);
        if (b.failed()) break;
        Tensor whole = ht, gotten = ht;
        whole.cols = gotten.cols = ht.stride;
        gotten.data = got.data();
        for (int64_t r = 0; r < ht.rows; ++r)
            for (int64_t c = 0; c < ht.stride; ++c) {
                const size_t i = size_t(r) * size_t(ht.stride) + size_t(c);
                if (std::memcmp(got.data() + i * es, static_cast<const uint8_t *>(ht.data) + i * es, es) == 0)
                    continue;  // bit-identical (NaN sentinels included)
                const double want = tensor_elem(whole, r, c), have = tensor_elem(gotten, r, c);
                const bool in_view = c < ht.cols;  // padding must not change at all
                const double d = std::fabs(have - want), lim = in_view ? allowed(int(h), r, c, want) : 0.0;
                if (std::isfinite(want)) {
                    sum_d2 += d * d;
                    sum_r2 += want * want;
                }
                if (!(d <= lim)) {
                    if (res.status != CaseResult::Fail)
                        res.detail = fmt("tensor #%zu element (%lld, %lld)%s is %.9g, reference %.9g (allowed %.3g)", h,
                                         (long long)r, (long long)c, in_view ? "" : " (outside the view)", have, want,
                                         lim);
                    res.status = CaseResult::Fail;
                    res.worst = std::max(res.worst, std::isnan(d) ? INFINITY : (lim > 0 ? d / lim : INFINITY));
                } else if (lim > 0) {
                    res.worst = std::max(res.worst, d / lim);
                }
                if (!(d <= res.max_abs)) res.max_abs = d;
            }
    }
    if (b.failed()) {
        res.status = CaseResult::Fail;
        res.detail = std::string("backend fault: ") + b.fault_message();
        b.recover(err);
    }
    res.nmse = sum_r2 > 0 ? sum_d2 / sum_r2 : sum_d2;
    return res;
}

SuiteTotals run_op_suite(Backend &b, const OpCases &cases, const std::string &label, const std::vector<Op> &ops,
                         bool verbose, FILE *out)
{
    struct PerOp {
        int n = 0, fail = 0, skip = 0;
        double max_abs = 0, worst = 0;
    };
    std::map<int, PerOp> per_op;
    SuiteTotals tot;
    for (const auto &c : cases) {
        if (!ops.empty() && std::find(ops.begin(), ops.end(), c->op()) == ops.end()) continue;
        CaseResult r = c->run(b);
        PerOp &p = per_op[int(c->op())];
        ++p.n;
        const char *verdict = r.status == CaseResult::Pass ? "PASS" : r.status == CaseResult::Fail ? "FAIL" : "SKIP";
        if (r.status == CaseResult::Pass) ++tot.pass;
        if (r.status == CaseResult::Fail) ++tot.fail, ++p.fail;
        if (r.status == CaseResult::Skip) ++tot.skip, ++p.skip;
        p.max_abs = std::max(p.max_abs, r.max_abs);
        p.worst = std::max(p.worst, r.worst);
        if (r.status == CaseResult::Skip)
            std::fprintf(out, "[%s] %-72s SKIP: %s\n", label.c_str(), c->name().c_str(), r.detail.c_str());
        else if (verbose || r.status == CaseResult::Fail)
            std::fprintf(out, "[%s] %-72s max|diff| %-9.3g nmse %-9.3g %5.3f of tol  %s%s%s\n", label.c_str(),
                         c->name().c_str(), r.max_abs, r.nmse, r.worst, verdict, r.detail.empty() ? "" : ": ",
                         r.detail.c_str());
    }
    std::fprintf(out, "[%s] %-22s %6s %6s %6s %12s %10s\n", label.c_str(), "op", "cases", "fail", "skip", "max|diff|",
                 "of tol");
    for (const auto &[op, p] : per_op)
        std::fprintf(out, "[%s] %-22s %6d %6d %6d %12.3g %10.3f\n", label.c_str(), op_name(Op(op)), p.n, p.fail,
                     p.skip, p.max_abs, p.worst);
    std::fprintf(out, "[%s] %d cases: %d passed, %d failed, %d skipped\n", label.c_str(),
                 tot.pass + tot.fail + tot.skip, tot.pass, tot.fail, tot.skip);
    return tot;
}

// ---- the ops ----------------------------------------------------------------------

namespace {

// y = x w^T [+ bias]; w may be a column slice of a wider (fused) matrix, y a
// column slice of a wider output (whose other columns must not change).
struct MatmulCase final : OpCase {
    DType wt, bias_dt;
    int64_t n, m, k, x_stride, w_c0, w_cols, y_c0, y_cols;
    bool bias;
    float w_scale;
    int x_ = 0, wbuf_ = 0, w_ = 0, b_ = 0, ybuf_ = 0, y_ = 0;
    std::vector<double> mag_;  // sum_c |x_c w_c| (+|bias|) per element of ybuf

    MatmulCase(DType w, int64_t n_, int64_t m_, int64_t k_, bool with_bias, DType bdt, int64_t xs, int64_t wc0,
               int64_t wcols, int64_t yc0, int64_t ycols, float wscale = 1.0f)
        : wt(w), bias_dt(bdt), n(n_), m(m_), k(k_), x_stride(xs), w_c0(wc0), w_cols(wcols), y_c0(yc0), y_cols(ycols),
          bias(with_bias), w_scale(wscale)
    {
    }
    Op op() const override { return Op::Matmul; }
    OpQuery query() const override { return OpQuery{Op::Matmul, wt, 0}; }
    std::string params() const override
    {
        std::string s = fmt("w=%s n=%lld m=%lld k=%lld", dt(wt), (long long)n, (long long)m, (long long)k) +
                        stride_note("x", k, x_stride);
        if (w_cols != k) s += fmt(" w=cols[%lld:+%lld] of %lld", (long long)w_c0, (long long)k, (long long)w_cols);
        if (y_cols != m) s += fmt(" y=cols[%lld:+%lld] of %lld", (long long)y_c0, (long long)m, (long long)y_cols);
        if (bias) s += fmt(" bias=%s", dt(bias_dt));
        return s;
    }
    void build(CaseTensors &t) override
    {
        x_ = t.input(DType::F32, n, k, x_stride);
        wbuf_ = t.input(wt, m, w_cols, w_cols, w_scale);
        w_ = t.view(wbuf_, 0, m, w_c0, k);
        if (bias) b_ = t.input(bias_dt, 1, m, m);
        ybuf_ = t.output(DType::F32, n, y_cols, y_cols);
        y_ = t.view(ybuf_, 0, n, y_c0, m);
    }
    void compute(Backend &b, const CaseSide &s) override
    {
        Tensor y = s[y_], bt = bias ? s[b_] : Tensor{};
        if (!s.reference) {
            b.matmul(s[x_], s[w_], bias ? &bt : nullptr, y);
            return;
        }
        // The reference on the activations the backend says it uses.
        const Tensor w = s[w_];
        Tensor x = s[x_];
        std::vector<uint16_t> rounded;
        std::vector<float> xr;
        if (b.matmul_rounds_x(wt, n, k)) {
            xr.resize(size_t(n * k));
            for (int64_t r = 0; r < n; ++r)
                for (int64_t c = 0; c < k; ++c) {
                    const float v = tensor_elem(x, r, c);
                    xr[size_t(r * k + c)] = wt == DType::BF16 ? bf16_to_f32(f32_to_bf16(v)) : f16_to_f32(f32_to_f16(v));
                }
            x = Tensor{xr.data(), DType::F32, n, k, k};
        }
        ref_matmul(x, w, bias ? &bt : nullptr, y);
        mag_.assign(size_t(n * y_cols), 0.0);
        for (int64_t r = 0; r < n; ++r)
            for (int64_t o = 0; o < m; ++o) {
                double a = 1e-30;
                for (int64_t c = 0; c < k; ++c) a += std::fabs(double(tensor_elem(x, r, c)) * tensor_elem(w, o, c));
                if (bias) a += std::fabs(tensor_elem(bt, 0, o));
                mag_[size_t(r * y_cols + y_c0 + o)] = a;
            }
    }
    double allowed(int h, int64_t r, int64_t c, double) const override
    {
        return h == ybuf_ ? 1e-5 * mag_[size_t(r * y_cols + c)] : 0.0;
    }
};

// y = x w^T [+ bias] with w block-quantized (Q8/Q4, core/quant.h): made
// from random bf16 values by quantize_rows (row 0's second block all zero:
// a zero scale), handed to the backend by adopt_weight (a quantized w is a
// whole tensor, never a view), released after the case. The reference is
// ref_matmul, which for Q8/Q4 runs ref_matmul_quant (x rounded to int8 per
// 32-block, integer block dots, double sums); the backend's product differs
// only in the order of its float additions, so allowed is 1e-5 * sum_c
// |xq_c wq_c| (+ |bias|) over the rounded operands of that product (scale_x *
// q_x and scale_w * q_w), which bounds sum |terms|. A backend whose
// matmul_rounds_x() says yes for Q8/Q4 (cuda above 16 rows: w dequantized to
// bf16, x rounded to bf16, bf16 cuBLAS GEMM) computes bf16(x) . bf16(w
// dequantized) instead of that definition; it is held to ref_matmul on those
// two rounded operands, at 1e-5 * sum_c |x_c w_c| of them.
struct QuantMatmulCase final : OpCase {
    DType wt, bias_dt;
    int64_t n, m, k, x_stride, y_cols;
    bool bias;
    int x_ = 0, b_ = 0, ybuf_ = 0, y_ = 0;
    std::vector<uint8_t> wq_;  // the host copy of w: quants, then scales
    Tensor wh_;                // w over wq_
    Backend *wb_ = nullptr;    // the backend holding wd_
    Tensor wd_;
    std::vector<double> mag_;

    QuantMatmulCase(DType w, int64_t n_, int64_t m_, int64_t k_, bool with_bias, DType bdt, int64_t xs, int64_t ycols)
        : wt(w), bias_dt(bdt), n(n_), m(m_), k(k_), x_stride(xs), y_cols(ycols), bias(with_bias)
    {
    }
    ~QuantMatmulCase() override { drop(); }
    void drop()
    {
        if (wb_) wb_->release_weight(wd_);
        wb_ = nullptr;
    }
    Op op() const override { return Op::Matmul; }
    OpQuery query() const override { return OpQuery{Op::Matmul, wt, 0}; }
    std::string params() const override
    {
        std::string s = fmt("w=%s n=%lld m=%lld k=%lld", dt(wt), (long long)n, (long long)m, (long long)k) +
                        stride_note("x", k, x_stride);
        if (y_cols != m) s += fmt(" y=cols[0:+%lld] of %lld", (long long)m, (long long)y_cols);
        if (bias) s += fmt(" bias=%s", dt(bias_dt));
        return s;
    }
    void build(CaseTensors &t) override
    {
        drop();
        x_ = t.input(DType::F32, n, k, x_stride, 2.0f);
        if (bias) b_ = t.input(bias_dt, 1, m, m);
        ybuf_ = t.output(DType::F32, n, y_cols, y_cols);
        y_ = t.view(ybuf_, 0, n, 0, m);
        std::vector<uint16_t> src(size_t(m * k));
        for (size_t i = 0; i < src.size(); ++i) src[i] = f32_to_bf16(0.5f * t.uniform());
        for (int64_t c = 32; c < std::min<int64_t>(k, 64); ++c) src[size_t(c)] = 0;
        wq_.assign(quant_tensor_bytes(wt, m, k), 0);
        wh_ = Tensor{wq_.data(), wt, m, k, 0};
        quant_set_layout(wh_);
        quantize_rows(src.data(), DType::BF16, k, wh_, 0, m);
    }
    void compute(Backend &b, const CaseSide &s) override
    {
        Tensor y = s[y_], bt = bias ? s[b_] : Tensor{};
        if (!s.reference) {
            wd_ = b.adopt_weight(wq_.data(), wt, m, k);
            wb_ = &b;
            b.matmul(s[x_], wd_, bias ? &bt : nullptr, y);
            return;
        }
        drop();  // the backend's run is over
        const Tensor x = s[x_];
        // The two operands of the product the backend computes, as f32.
        std::vector<float> xa(size_t(n * k)), wa(size_t(m * k));
        const bool rounds = b.matmul_rounds_x(wt, n, k);
        for (int64_t o = 0; o < m; ++o)
            for (int64_t c = 0; c < k; ++c) {
                const float v = quant_elem(wh_, o, c);
                wa[size_t(o * k + c)] = rounds ? bf16_to_f32(f32_to_bf16(v)) : v;
            }
        for (int64_t r = 0; r < n; ++r) {
            if (rounds) {
                for (int64_t c = 0; c < k; ++c) xa[size_t(r * k + c)] = bf16_to_f32(f32_to_bf16(tensor_elem(x, r, c)));
                continue;
            }
            int8_t q[32];
            float sx;
            for (int64_t c0 = 0; c0 < k; c0 += kQuantBlock) {
                const int64_t len = std::min<int64_t>(kQuantBlock, k - c0);
                quantize_x_block(static_cast<const float *>(x.data) + size_t(r * x_stride + c0), len, q, sx);
                for (int64_t i = 0; i < len; ++i) xa[size_t(r * k + c0 + i)] = sx * float(q[i]);
            }
        }
        if (rounds) {
            const Tensor xr{xa.data(), DType::F32, n, k, k}, wr{wa.data(), DType::F32, m, k, k};
            ref_matmul(xr, wr, bias ? &bt : nullptr, y);
        } else {
            ref_matmul(x, wh_, bias ? &bt : nullptr, y);
        }
        mag_.assign(size_t(n * y_cols), 0.0);
        for (int64_t r = 0; r < n; ++r)
            for (int64_t o = 0; o < m; ++o) {
                double a = 1e-30;
                for (int64_t c = 0; c < k; ++c) a += std::fabs(double(xa[size_t(r * k + c)]) * wa[size_t(o * k + c)]);
                if (bias) a += std::fabs(tensor_elem(bt, 0, o));
                mag_[size_t(r * y_cols + o)] = a;
            }
    }
    double allowed(int h, int64_t r, int64_t c, double) const override
    {
        return h == ybuf_ ? 1e-5 * mag_[size_t(r * y_cols + c)] : 0.0;
    }
};

struct RmsNormCase final : OpCase {
    DType wt;
    int64_t n, d, x_stride, y_stride;
    float x_scale;
    int x_ = 0, w_ = 0, y_ = 0;
    RmsNormCase(DType w, int64_t n_, int64_t d_, int64_t xs, int64_t ys, float xscale = 1.0f)
        : wt(w), n(n_), d(d_), x_stride(xs), y_stride(ys), x_scale(xscale)
    {
        abs_tol_ = rel_tol_ = 2e-5;
    }
    Op op() const override { return Op::RmsNorm; }
    OpQuery query() const override { return OpQuery{Op::RmsNorm, wt, 0}; }
    std::string params() const override
    {
        return fmt("w=%s n=%lld d=%lld", dt(wt), (long long)n, (long long)d) + stride_note("x", d, x_stride) +
               stride_note("y", d, y_stride);
    }
    void build(CaseTensors &t) override
    {
        x_ = t.input(DType::F32, n, d, x_stride, x_scale);
        w_ = t.input(wt, 1, d, d);
        y_ = t.output(DType::F32, n, d, y_stride);
    }
    void compute(Backend &b, const CaseSide &s) override
    {
        Tensor y = s[y_];
        if (s.reference) ref_rms_norm(s[x_], s[w_], 1e-5f, y);
        else b.rms_norm(s[x_], s[w_], 1e-5f, y);
    }
};

// x around `offset` (the two-pass variance matters), w and b of their own dtypes.
struct LayerNormCase final : OpCase {
    DType wt, bt;
    int64_t n, d, x_stride, y_stride;
    float x_scale, x_offset;
    int x_ = 0, w_ = 0, b_ = 0, y_ = 0;
    LayerNormCase(DType w, DType bdt, int64_t n_, int64_t d_, int64_t xs, int64_t ys, float xscale, float xoffset)
        : wt(w), bt(bdt), n(n_), d(d_), x_stride(xs), y_stride(ys), x_scale(xscale), x_offset(xoffset)
    {
        abs_tol_ = rel_tol_ = 2e-5;
    }
    Op op() const override { return Op::LayerNorm; }
    OpQuery query() const override { return OpQuery{Op::LayerNorm, wt, 0}; }
    std::string params() const override
    {
        return fmt("w=%s b=%s n=%lld d=%lld x=%g+-%g", dt(wt), dt(bt), (long long)n, (long long)d, double(x_offset),
                   double(x_scale)) +
               stride_note("x", d, x_stride) + stride_note("y", d, y_stride);
    }
    void build(CaseTensors &t) override
    {
        x_ = t.input(DType::F32, n, d, x_stride, x_scale, x_offset);
        w_ = t.input(wt, 1, d, d);
        b_ = t.input(bt, 1, d, d);
        y_ = t.output(DType::F32, n, d, y_stride);
    }
    void compute(Backend &b, const CaseSide &s) override
    {
        Tensor y = s[y_];
        if (s.reference) ref_layer_norm(s[x_], s[w_], s[b_], 1e-5f, y);
        else b.layer_norm(s[x_], s[w_], s[b_], 1e-5f, y);
    }
};

// y = a + b, or a = a + b in place.
struct AddCase final : OpCase {
    int64_t n, d, a_stride, b_stride, y_stride;
    bool in_place;
    float scale;
    int a_ = 0, b_ = 0, y_ = 0;
    AddCase(int64_t n_, int64_t d_, int64_t as, int64_t bs, int64_t ys, bool inplace, float sc)
        : n(n_), d(d_), a_stride(as), b_stride(bs), y_stride(ys), in_place(inplace), scale(sc)
    {
    }
    Op op() const override { return Op::Add; }
    std::string params() const override
    {
        return fmt("n=%lld d=%lld%s", (long long)n, (long long)d, in_place ? " in place (y = a)" : "") +
               stride_note("a", d, a_stride) + stride_note("b", d, b_stride) +
               (in_place ? std::string() : stride_note("y", d, y_stride));
    }
    void build(CaseTensors &t) override
    {
        a_ = in_place ? t.inout(DType::F32, n, d, a_stride, scale) : t.input(DType::F32, n, d, a_stride, scale);
        b_ = t.input(DType::F32, n, d, b_stride, scale);
        y_ = in_place ? a_ : t.output(DType::F32, n, d, y_stride);
    }
    void compute(Backend &b, const CaseSide &s) override
    {
        Tensor y = s[y_];
        if (s.reference) ref_add(s[a_], s[b_], y);
        else b.add(s[a_], s[b_], y);
    }
};

// gate and up as the two halves of one fused (n, 2d + extra) projection.
struct SiluMulCase final : OpCase {
    int64_t n, d, extra, y_stride;
    float scale;
    int fused_ = 0, g_ = 0, u_ = 0, y_ = 0;
    SiluMulCase(int64_t n_, int64_t d_, int64_t ex, int64_t ys, float sc)
        : n(n_), d(d_), extra(ex), y_stride(ys), scale(sc)
    {
        abs_tol_ = rel_tol_ = 2e-6;
    }
    Op op() const override { return Op::SiluMul; }
    std::string params() const override
    {
        return fmt("n=%lld d=%lld gate,up=halves of (n, %lld)", (long long)n, (long long)d, (long long)(2 * d + extra)) +
               stride_note("y", d, y_stride);
    }
    void build(CaseTensors &t) override
    {
        fused_ = t.input(DType::F32, n, 2 * d + extra, 2 * d + extra, scale);
        g_ = t.view(fused_, 0, n, 0, d);
        u_ = t.view(fused_, 0, n, d, d);
        y_ = t.output(DType::F32, n, d, y_stride);
    }
    void compute(Backend &b, const CaseSide &s) override
    {
        Tensor y = s[y_];
        if (s.reference) ref_silu_mul(s[g_], s[u_], y);
        else b.silu_mul(s[g_], s[u_], y);
    }
};

struct GeluCase final : OpCase {
    int64_t n, d, x_stride, y_stride;
    float scale;
    int x_ = 0, y_ = 0;
    GeluCase(int64_t n_, int64_t d_, int64_t xs, int64_t ys, float sc)
        : n(n_), d(d_), x_stride(xs), y_stride(ys), scale(sc)
    {
        abs_tol_ = rel_tol_ = 2e-6;
    }
    Op op() const override { return Op::Gelu; }
    std::string params() const override
    {
        return fmt("n=%lld d=%lld", (long long)n, (long long)d) + stride_note("x", d, x_stride) +
               stride_note("y", d, y_stride);
    }
    void build(CaseTensors &t) override
    {
        x_ = t.input(DType::F32, n, d, x_stride, scale);
        y_ = t.output(DType::F32, n, d, y_stride);
    }
    void compute(Backend &b, const CaseSide &s) override
    {
        Tensor y = s[y_];
        if (s.reference) ref_gelu(s[x_], y);
        else b.gelu(s[x_], y);
    }
};

struct EmbedCase final : OpCase {
    DType wt;
    int64_t vocab, n, d, y_stride;
    std::vector<int32_t> ids;
    int table_ = 0, y_ = 0;
    EmbedCase(DType w, int64_t v, int64_t n_, int64_t d_, int64_t ys) : wt(w), vocab(v), n(n_), d(d_), y_stride(ys) {}
    Op op() const override { return Op::Embed; }
    OpQuery query() const override { return OpQuery{Op::Embed, wt, 0}; }
    std::string params() const override
    {
        return fmt("table=%s (%lld, %lld) n=%lld", dt(wt), (long long)vocab, (long long)d, (long long)n) +
               stride_note("y", d, y_stride);
    }
    void build(CaseTensors &t) override
    {
        table_ = t.input(wt, vocab, d, d);
        y_ = t.output(DType::F32, n, d, y_stride);
        ids.resize(size_t(n));
        for (auto &id : ids) id = t.below(int32_t(vocab));
        if (n > 1) ids[1] = int32_t(vocab - 1);  // the last row of the table
    }
    void compute(Backend &b, const CaseSide &s) override
    {
        Tensor y = s[y_];
        if (s.reference) ref_embed(s[table_], ids.data(), n, y);
        else b.embed(s[table_], ids.data(), n, y);
    }
};

// src rows into rows [r0, r0 + n) of a wider-strided cache (a KV-cache write).
struct CopyCase final : OpCase {
    DType dtp;
    int64_t n, d, src_stride, cache_rows, r0, cache_stride;
    int src_ = 0, cache_ = 0, dst_ = 0;
    CopyCase(DType d_t, int64_t n_, int64_t d_, int64_t ss, int64_t cr, int64_t r0_, int64_t cs)
        : dtp(d_t), n(n_), d(d_), src_stride(ss), cache_rows(cr), r0(r0_), cache_stride(cs)
    {
    }
    Op op() const override { return Op::Copy; }
    OpQuery query() const override { return OpQuery{Op::Copy, dtp, 0}; }
    std::string params() const override
    {
        return fmt("%s n=%lld d=%lld into rows [%lld:+%lld] of (%lld, %lld)", dt(dtp), (long long)n, (long long)d,
                   (long long)r0, (long long)n, (long long)cache_rows, (long long)d) +
               stride_note("src", d, src_stride) + stride_note("cache", d, cache_stride);
    }
    void build(CaseTensors &t) override
    {
        src_ = t.input(dtp, n, d, src_stride);
        cache_ = t.inout(dtp, cache_rows, d, cache_stride);
        dst_ = t.view(cache_, r0, n, 0, d);
    }
    void compute(Backend &b, const CaseSide &s) override
    {
        Tensor dst = s[dst_];
        if (s.reference) ref_copy(s[src_], dst);
        else b.copy(s[src_], dst);
    }
};

// M-RoPE in place on x (n, n_head*head_dim), a view of a wider row (q of qkv).
struct RopeTextCase final : OpCase {
    TextRopeParams p;
    int64_t n, stride;
    int32_t max_pos;
    std::vector<int32_t> pos;
    int x_ = 0;
    RopeTextCase(TextRopeParams rp, int64_t n_, int64_t st, int32_t maxp) : p(rp), n(n_), stride(st), max_pos(maxp)
    {
        abs_tol_ = rel_tol_ = 2e-5;
    }
    Op op() const override { return Op::RopeText; }
    std::string params() const override
    {
        return fmt("n=%lld heads=%dx%d rotary=%d sections=%d/%d/%d theta=%g pos<%d", (long long)n, p.n_head, p.head_dim,
                   p.rotary_dim, p.section[0], p.section[1], p.section[2], p.theta, max_pos) +
               stride_note("x", int64_t(p.n_head) * p.head_dim, stride);
    }
    void build(CaseTensors &t) override
    {
        x_ = t.inout(DType::F32, n, int64_t(p.n_head) * p.head_dim, stride);
        pos.resize(size_t(3 * n));
        for (auto &v : pos) v = t.below(max_pos);
    }
    void compute(Backend &b, const CaseSide &s) override
    {
        Tensor x = s[x_];
        if (s.reference) ref_rope_text(x, pos.data(), p);
        else b.rope_text(x, pos.data(), p);
    }
};

struct RopeVisionCase final : OpCase {
    int n_head, head_dim;
    int64_t n, stride;
    double theta;
    int32_t max_pos;
    std::vector<int32_t> row, col;
    int x_ = 0;
    RopeVisionCase(int nh, int hd, int64_t n_, int64_t st, double th, int32_t maxp)
        : n_head(nh), head_dim(hd), n(n_), stride(st), theta(th), max_pos(maxp)
    {
        abs_tol_ = rel_tol_ = 2e-5;
    }
    Op op() const override { return Op::RopeVision; }
    std::string params() const override
    {
        return fmt("n=%lld heads=%dx%d theta=%g pos<%d", (long long)n, n_head, head_dim, theta, max_pos) +
               stride_note("x", int64_t(n_head) * head_dim, stride);
    }
    void build(CaseTensors &t) override
    {
        x_ = t.inout(DType::F32, n, int64_t(n_head) * head_dim, stride);
        row.resize(size_t(n));
        col.resize(size_t(n));
        for (auto &v : row) v = t.below(max_pos);
        for (auto &v : col) v = t.below(max_pos);
    }
    void compute(Backend &b, const CaseSide &s) override
    {
        Tensor x = s[x_];
        if (s.reference) ref_rope_vision(x, row.data(), col.data(), n_head, head_dim, theta);
        else b.rope_vision(x, row.data(), col.data(), n_head, head_dim, theta);
    }
};

// q a view of a padded row; k and v either views of one fused kv projection
// or tensors of their own (k padded).
struct AttentionCase final : OpCase {
    int64_t n_q, n_kv;
    int n_head, n_kv_head, D;
    bool causal, fused_kv;
    std::vector<int32_t> segs;
    float q_scale;
    int q_ = 0, kv_ = 0, k_ = 0, v_ = 0, out_ = 0;
    AttentionCase(int64_t nq, int64_t nkv, int nh, int nkvh, int hd, bool c, std::vector<int32_t> segments,
                  bool fused, float qscale = 2.0f)
        : n_q(nq), n_kv(nkv), n_head(nh), n_kv_head(nkvh), D(hd), causal(c), fused_kv(fused),
          segs(std::move(segments)), q_scale(qscale)
    {
        abs_tol_ = 4e-6;
        rel_tol_ = 1e-5;
    }
    Op op() const override { return Op::Attention; }
    OpQuery query() const override { return OpQuery{Op::Attention, DType::F32, D}; }
    std::string params() const override
    {
        std::string mask = causal ? "causal" : segs.empty() ? "full" : "segments";
        for (size_t i = 0; i < segs.size(); ++i) {
            mask.push_back(i ? ',' : ' ');
            mask.append(std::to_string(segs[i]));
        }
        return fmt("q=%lld kv=%lld heads=%d/%d D=%d ", (long long)n_q, (long long)n_kv, n_head, n_kv_head, D) + mask +
               (fused_kv ? " kv=fused" : "");
    }
    void build(CaseTensors &t) override
    {
        const int64_t qc = int64_t(n_head) * D, kc = int64_t(n_kv_head) * D;
        q_ = t.view(t.input(DType::F32, n_q, qc + 8, qc + 8, q_scale), 0, n_q, 4, qc);
        if (fused_kv) {
            kv_ = t.input(DType::F32, n_kv, 2 * kc, 2 * kc, 2.0f);
            k_ = t.view(kv_, 0, n_kv, 0, kc);
            v_ = t.view(kv_, 0, n_kv, kc, kc);
        } else {
            k_ = t.input(DType::F32, n_kv, kc, kc + 3, 2.0f);
            v_ = t.input(DType::F32, n_kv, kc, kc);
        }
        out_ = t.output(DType::F32, n_q, qc, fused_kv ? qc : qc + 4);
    }
    AttentionParams params_for() const
    {
        AttentionParams p;
        p.n_head = n_head;
        p.n_kv_head = n_kv_head;
        p.head_dim = D;
        p.scale = 1.0f / std::sqrt(float(D));
        p.causal = causal;
        p.kv_offset = n_kv - n_q;
        p.segments = segs.empty() ? nullptr : segs.data();
        p.n_segments = int(segs.size());
        return p;
    }
    void compute(Backend &b, const CaseSide &s) override
    {
        Tensor out = s[out_];
        if (s.reference) ref_attention(s[q_], s[k_], s[v_], params_for(), out);
        else b.attention(s[q_], s[k_], s[v_], params_for(), out);
    }
    double allowed(int, int64_t, int64_t, double ref) const override
    {
        // |v| <= 2 for fused kv: the absolute part scales with the values.
        return abs_tol_ * (fused_kv ? 2.0 : 1.0) + rel_tol_ * std::fabs(ref);
    }
};

// Images of given grids (h, w), patches in row-major order per image;
// accumulates into y.
struct PosEmbedCase final : OpCase {
    DType wt;
    int side;
    int64_t d, y_stride;
    std::vector<std::pair<int, int>> grids;
    std::vector<int32_t> row, col, gh, gw;
    int table_ = 0, y_ = 0;
    PosEmbedCase(DType w, int sd, int64_t d_, int64_t ys, std::vector<std::pair<int, int>> g)
        : wt(w), side(sd), d(d_), y_stride(ys), grids(std::move(g))
    {
        abs_tol_ = rel_tol_ = 2e-5;
    }
    Op op() const override { return Op::PosEmbedBicubic; }
    OpQuery query() const override { return OpQuery{Op::PosEmbedBicubic, wt, 0}; }
    std::string params() const override
    {
        std::string s = fmt("table=%s side=%d d=%lld grids", dt(wt), side, (long long)d);
        for (auto [h, w] : grids) s += fmt(" %dx%d", h, w);
        return s + stride_note("y", d, y_stride);
    }
    void build(CaseTensors &t) override
    {
        row.clear(), col.clear(), gh.clear(), gw.clear();
        for (auto [h, w] : grids)
            for (int r = 0; r < h; ++r)
                for (int c = 0; c < w; ++c) {
                    row.push_back(r);
                    col.push_back(c);
                    gh.push_back(h);
                    gw.push_back(w);
                }
        table_ = t.input(wt, int64_t(side) * side, d, d);
        y_ = t.inout(DType::F32, int64_t(row.size()), d, y_stride);
    }
    void compute(Backend &b, const CaseSide &s) override
    {
        Tensor y = s[y_];
        if (s.reference) ref_add_pos_embed_bicubic(s[table_], side, row.data(), col.data(), gh.data(), gw.data(), y);
        else b.add_pos_embed_bicubic(s[table_], side, row.data(), col.data(), gh.data(), gw.data(), y);
    }
};

}  // namespace

// ---- the table ----------------------------------------------------------------------

OpCases op_suite_cases()
{
    OpCases c;
    auto add = [&c](OpCase *p) { c.emplace_back(p); };
    const DType kWeights[] = {DType::F32, DType::BF16, DType::F16};
    const int64_t kRows[] = {1, 3, 17};
    // Column counts around the kernels' vector widths and block sizes.
    const int64_t kCols[] = {1, 7, 64, 130, 257, 1100};

    // Normalisation: odd row counts read x as a strided view.
    for (DType w : kWeights)
        for (int64_t n : kRows)
            for (int64_t d : kCols) {
                add(new RmsNormCase(w, n, d, d + (n % 2) * 5, d + (n == 3 ? 3 : 0)));
                add(new LayerNormCase(w, w, n, d, d + 3, d + (n == 17 ? 1 : 0), 3.0f, 10.0f));
            }
    for (int64_t n : {1, 3, 17, 300}) {
        add(new RmsNormCase(DType::BF16, n, 77, 82, 77, 3.0f));
        add(new LayerNormCase(DType::BF16, DType::F32, n, 77, 82, 77, 3.0f, 0.0f));
    }
    for (DType w : kWeights) {
        add(new RmsNormCase(w, 5, 300, 300, 300, 3.0f));
        add(new LayerNormCase(w, w, 5, 300, 300, 300, 3.0f, 0.0f));
    }

    // Element-wise: float4 and scalar paths, views, in place.
    for (int64_t n : kRows)
        for (int64_t d : kCols) {
            add(new SiluMulCase(n, d, 0, d + (n == 3 ? 2 : 0), 4.0f));
            add(new GeluCase(n, d, d + 1, d + (n == 17 ? 2 : 0), 4.0f));
            add(new AddCase(n, d, d, d + 1, d, true, 4.0f));
        }
    for (int64_t n : {1, 3, 17, 300}) {
        add(new SiluMulCase(n, 77, 1, 77, 4.0f));
        add(new GeluCase(n, 77, 82, 77, 3.0f));
        add(new AddCase(n, 77, 82, 77, n == 17 ? 80 : 77, false, 3.0f));
    }
    add(new SiluMulCase(7, 130, 0, 130, 4.0f));
    add(new GeluCase(7, 130, 130, 130, 4.0f));
    add(new AddCase(7, 130, 130, 130, 130, false, 4.0f));

    // Gathers and copies.
    for (DType w : kWeights)
        for (int64_t d : kCols) {
            add(new EmbedCase(w, 50, 9, d, d));
            add(new CopyCase(w, 9, d, d + 1, 40, 5, d + 8));
        }
    for (DType w : kWeights) {
        add(new EmbedCase(w, 50, 5, 9, 12));
        add(new EmbedCase(w, 30, 5, 300, 300));
    }
    add(new CopyCase(DType::F32, 20, 8, 11, 20, 0, 9));
    add(new CopyCase(DType::F32, 7, 130, 130, 20, 9, 130));

    // Matrix products. GEMV sizes (n <= 16) around its row buckets, k around
    // its 8-wide loads, bias on every other case.
    for (DType w : kWeights)
        for (int64_t n : {1, 2, 3, 5, 9, 16})
            for (int64_t k : {1, 8, 13, 64, 136, 520})
                for (int64_t m : {1, 9, 33}) {
                    const bool bias = (n + m) % 2 == 0;
                    add(new MatmulCase(w, n, m, k, bias, w, k % 8 ? k + 1 : k, 0, k, 0, m + 2));
                }
    // Both regimes on views: x padded, w a column slice of a fused matrix,
    // y a column slice of a wider output; k = 2100 spans two k blocks of the
    // cpu bf16 GEMM.
    for (DType w : kWeights)
        for (int64_t n : {1, 3, 8, 17, 64, 300})
            for (auto [m, k] : {std::pair<int64_t, int64_t>{13, 37}, {70, 100}, {33, 258}, {9, 2100}})
                add(new MatmulCase(w, n, m, k, (n + m) % 2 == 1, DType::BF16, k + 3, 2, k + 5, 2, m + 4, 0.5f));
    for (DType w : kWeights)
        for (int64_t n : {3, 40}) add(new MatmulCase(w, n, 77, 200, true, w, 200, 0, 200, 0, 77));
    // Block-quantized weights: the GEMV's row buckets and the rows above it,
    // k a multiple of the 32-block and not (80: a partial last block; 1100:
    // more blocks than a warp has lanes), x padded on odd n, y a padded
    // output, with and without a bias.
    for (DType w : {DType::Q8, DType::Q4})
        for (int64_t n : {1, 3, 16, 17, 40})
            for (int64_t k : {64, 80, 1100})
                for (bool with_bias : {false, true})
                    add(new QuantMatmulCase(w, n, 33, k, with_bias, n % 2 ? DType::F32 : DType::BF16,
                                            n % 2 ? k + 3 : k, 35));

    // Rotaries: GLM's partial text rotary with odd sections; vision heads of 8..128.
    struct TextRope {
        int n_head, head_dim, rotary, s0, s1, s2;
    };
    for (TextRope tr : {TextRope{4, 16, 8, 2, 1, 1}, TextRope{3, 128, 64, 8, 12, 12}, TextRope{2, 10, 10, 1, 2, 2}})
        for (int64_t n : {1, 5, 70}) {
            TextRopeParams p;
            p.n_head = tr.n_head;
            p.head_dim = tr.head_dim;
            p.rotary_dim = tr.rotary;
            p.theta = 500000.0;
            p.section[0] = tr.s0;
            p.section[1] = tr.s1;
            p.section[2] = tr.s2;
            add(new RopeTextCase(p, n, 3 * int64_t(tr.n_head) * tr.head_dim, 3000));
        }
    for (int64_t n : {1, 3, 9, 64, 300}) {
        TextRopeParams p;
        p.n_head = n == 9 ? 4 : 3;
        p.head_dim = n == 9 ? 32 : 16;
        p.rotary_dim = n == 9 ? 16 : 8;
        p.theta = 500000.0;
        p.section[0] = n == 9 ? 4 : 1;
        p.section[1] = 2;
        p.section[2] = n == 9 ? 2 : 1;
        add(new RopeTextCase(p, n, n == 9 ? 128 : 50, 4000));
    }
    for (int hd : {8, 16, 128})
        for (int64_t n : {1, 6, 37}) {
            const int nh = hd == 128 ? 3 : 2;
            add(new RopeVisionCase(nh, hd, n, int64_t(nh) * hd + 4, 10000.0, 80));
        }
    for (int64_t n : {1, 3, 9, 64, 300})
        add(new RopeVisionCase(n == 9 ? 4 : 2, 32, n, n == 9 ? 128 : 64, 10000.0, 9));

    // Vision position table: two images of different grids per call.
    for (DType w : kWeights)
        for (int side : {3, 6})
            for (int64_t d : {5, 64, 300}) add(new PosEmbedCase(w, side, d, d, {{4, 6}, {10, 2}}));
    for (DType w : {DType::F32, DType::BF16}) add(new PosEmbedCase(w, 6, 20, 23, {{4, 10}, {14, 2}}));
    for (DType w : kWeights) add(new PosEmbedCase(w, 4, 300, 300, {{5, 6}}));

    // Attention: causal prefill from an empty cache around the 16/32 tiles,
    // chunked prefill and decode after a cache, long caches (split-KV decode
    // with an uneven last split), vision's full and block-diagonal masks, GQA,
    // head sizes that are not multiples of 16.
    struct Attn {
        int64_t q, kv;
        int h, kvh, D;
        bool causal;
        std::vector<int32_t> segs;
    };
    const std::vector<Attn> separate = {
        {1, 1, 2, 1, 16, true, {}},      {17, 17, 4, 2, 16, true, {}},   {40, 40, 2, 2, 128, true, {}},
        {33, 33, 3, 1, 24, true, {}},    {5, 70, 4, 2, 16, true, {}},    {1, 100, 8, 2, 64, true, {}},
        {2, 37, 4, 1, 128, true, {}},    {1, 700, 8, 2, 128, true, {}},  {3, 301, 4, 2, 64, true, {}},
        {2, 520, 2, 1, 16, false, {}},   {20, 20, 2, 2, 8, false, {}},
        {45, 45, 2, 2, 16, false, {16, 4, 25}}, {36, 36, 3, 3, 128, false, {20, 16}},
        {1, 600, 4, 2, 64, true, {}},    {3, 50, 4, 2, 64, true, {}},    {37, 37, 4, 2, 64, true, {}},
        {37, 37, 4, 2, 64, false, {16, 5, 16}},
    };
    for (const Attn &a : separate) add(new AttentionCase(a.q, a.kv, a.h, a.kvh, a.D, a.causal, a.segs, false));
    for (int hd : {24, 32, 128}) {
        const std::vector<Attn> fused = {
            {1, 1, 4, 2, hd, true, {}},     {1, 40, 4, 2, hd, true, {}},      {3, 10, 4, 2, hd, true, {}},
            {64, 64, 4, 2, hd, true, {}},   {300, 317, 4, 2, hd, true, {}},   {17, 17, 4, 2, hd, false, {}},
            {300, 300, 4, 2, hd, false, {100, 36, 164}}, {8, 8, 4, 2, hd, false, {1, 7}},
            {1, 1000, 4, 2, hd, true, {}},  {17, 40, 4, 2, hd, true, {}},     {33, 33, 4, 2, hd, false, {}},
        };
        for (const Attn &a : fused) add(new AttentionCase(a.q, a.kv, a.h, a.kvh, a.D, a.causal, a.segs, true));
    }
    // Beyond the CUDA kernels' head size: cpu runs it, cuda says why not.
    add(new AttentionCase(5, 9, 2, 1, 160, true, {}, false));
    return c;
}

}  // namespace vlm
