// backend_checked.cpp: the checked front of backend.h (ggml-backend.cpp's
// wrapper, done once for every backend). Each public op checks its
// arguments - tensor layouts (sizes below 2^31, stride >= cols, data set),
// activation dtypes, shapes against each other, outputs that overlap an
// input they may not, the host index arrays (token ids within the table,
// segment lengths, grids, positions present) - then asks supports() about
// its weight dtype, and only then calls the backend's slot. A refused call
// records a fault naming the op, the argument, what was expected and what
// was found; after any fault, ops and transfers do nothing until recover().
// Cost per call: a few dozen comparisons, one or two virtual supports()
// calls, and one pass over the host index arrays (n ints), never over
// tensor data.
#include "core/backend.h"
#include "core/quant.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace vlm {

namespace {

constexpr int64_t kMaxDim = 0x7fffffff;

std::string describe(const Tensor &t)
{
    char buf[112];
    if (t.stride == t.cols)
        std::snprintf(buf, sizeof buf, "(%lld, %lld) %s", (long long)t.rows, (long long)t.cols,
                      dtype_name(t.dtype));
    else
        std::snprintf(buf, sizeof buf, "(%lld, %lld; stride %lld) %s", (long long)t.rows,
                      (long long)t.cols, (long long)t.stride, dtype_name(t.dtype));
    return buf;
}

std::string num(int64_t v) { return std::to_string(v); }

// A tensor's own layout: sizes in range, rows `stride` apart with stride >=
// cols, memory present when it has elements.
bool layout_ok(const char *name, const Tensor &t, std::string &why)
{
    if (t.rows < 0 || t.cols < 0 || t.rows > kMaxDim || t.cols > kMaxDim || t.stride < t.cols ||
        t.stride > kMaxDim) {
        why = std::string(name) + " " + describe(t) + ": needs 0 <= rows, cols < 2^31 and cols <= stride < 2^31";
        return false;
    }
    if (t.data == nullptr && t.rows > 0 && t.cols > 0) {
        why = std::string(name) + " " + describe(t) + " has no memory";
        return false;
    }
    return true;
}

bool is_f32(const char *name, const Tensor &t, std::string &why)
{
    if (!layout_ok(name, t, why)) return false;
    if (t.dtype == DType::F32) return true;
    why = std::string(name) + " " + describe(t) + ": activations must be F32";
    return false;
}

bool shape_is(const char *name, const Tensor &t, int64_t rows, int64_t cols, std::string &why)
{
    if (t.rows == rows && t.cols == cols) return true;
    why = std::string(name) + " " + describe(t) + ": expected (" + num(rows) + ", " + num(cols) + ")";
    return false;
}

bool same_shape(const char *an, const Tensor &a, const char *bn, const Tensor &b, std::string &why)
{
    if (a.rows == b.rows && a.cols == b.cols) return true;
    why = std::string(an) + " " + describe(a) + " and " + bn + " " + describe(b) + " differ in shape";
    return false;
}

bool empty_view(const Tensor &t) { return t.rows == 0 || t.cols == 0; }

// Whether some element of a and some element of b share a byte. Exact for
// views with the same row pitch (column slices of one buffer interleave
// without overlapping); otherwise compares the byte ranges they span.
bool overlaps(const Tensor &a, const Tensor &b)
{
    if (empty_view(a) || empty_view(b)) return false;
    const int64_t ea = int64_t(dtype_size(a.dtype)), eb = int64_t(dtype_size(b.dtype));
    const int64_t A = int64_t(reinterpret_cast<uintptr_t>(a.data));
    const int64_t B = int64_t(reinterpret_cast<uintptr_t>(b.data));
    const int64_t a_end = A + ((a.rows - 1) * a.stride + a.cols) * ea;
    const int64_t b_end = B + ((b.rows - 1) * b.stride + b.cols) * eb;
    if (a_end <= B || b_end <= A) return false;
    const int64_t pitch = a.stride * ea;
    if (pitch != b.stride * eb || pitch == 0) return true;
    // Place b on a's grid of rows: b's row r starts at row_off + r of a's
    // rows, column byte col_off (a row of b may run into the next a row).
    const int64_t delta = B - A;
    int64_t row_off = delta / pitch, col_off = delta % pitch;
    if (col_off < 0) {
        col_off += pitch;
        --row_off;
    }
    const int64_t a_cols = a.cols * ea, b_cols = b.cols * eb;
    for (int wrap = 0; wrap < 2; ++wrap) {
        // Bytes [lo, hi) of b relative to the start of an a row, rows shifted by `wrap`.
        const int64_t lo = wrap ? 0 : col_off;
        const int64_t hi = wrap ? col_off + b_cols - pitch : std::min(col_off + b_cols, pitch);
        if (hi <= lo || lo >= a_cols) continue;
        const int64_t r0 = row_off + wrap, r1 = r0 + b.rows;  // a rows b touches
        if (r0 < a.rows && r1 > 0) return true;
    }
    return false;
}

bool identical(const Tensor &a, const Tensor &b)
{
    return a.data == b.data && a.dtype == b.dtype && a.rows == b.rows && a.cols == b.cols &&
           a.stride == b.stride;
}

// `out` may be `in` itself when `may_be_in`, else must not touch it.
bool no_overlap(const char *on, const Tensor &out, const char *in_name, const Tensor &in, bool may_be_in,
                std::string &why)
{
    if (may_be_in && identical(out, in)) return true;
    if (!overlaps(out, in)) return true;
    why = std::string(on) + " " + describe(out) + " overlaps " + in_name + " " + describe(in) +
          (may_be_in ? " without being it" : "");
    return false;
}

bool host_array(const char *name, const void *p, int64_t n, std::string &why)
{
    if (p != nullptr || n == 0) return true;
    why = std::string(name) + ": host array of " + num(n) + " entries is missing";
    return false;
}

// A quantized weight: the layout of core/quant.h (stride = cols rounded up
// to blocks, scales right after the quants).
bool quant_layout_ok(const Tensor &w, std::string &why)
{
    if (!dtype_is_quantized(w.dtype)) return true;
    Tensor expect = w;
    quant_set_layout(expect);
    if (w.stride == expect.stride && w.scales == expect.scales) return true;
    why = "w " + describe(w) + ": a quantized weight needs stride " + num(expect.stride) +
          " and its scales right after its quants";
    return false;
}

// Whether y shares a byte with the whole allocation of a quantized w.
bool overlaps_quant(const Tensor &y, const Tensor &w)
{
    if (empty_view(y) || empty_view(w)) return false;
    const uintptr_t Y = reinterpret_cast<uintptr_t>(y.data), W = reinterpret_cast<uintptr_t>(w.data);
    const uintptr_t y_end = Y + size_t((y.rows - 1) * y.stride + y.cols) * sizeof(float);
    const uintptr_t w_end = W + quant_tensor_bytes(w.dtype, w.rows, w.cols);
    return !(y_end <= W || w_end <= Y);
}

bool check_matmul(const Tensor &x, const Tensor &w, const Tensor *bias, const Tensor &y, std::string &why)
{
    if (!is_f32("x", x, why) || !layout_ok("w", w, why) || !quant_layout_ok(w, why) || !is_f32("y", y, why))
        return false;
    if (dtype_is_quantized(w.dtype) && overlaps_quant(y, w)) {
        why = "y " + describe(y) + " overlaps w " + describe(w);
        return false;
    }
    if (w.cols != x.cols) {
        why = "x " + describe(x) + " and w " + describe(w) + ": x.cols != w.cols";
        return false;
    }
    if (!shape_is("y", y, x.rows, w.rows, why)) return false;
    if (bias && (!layout_ok("bias", *bias, why) || !shape_is("bias", *bias, 1, w.rows, why))) return false;
    return no_overlap("y", y, "x", x, false, why) &&
           (dtype_is_quantized(w.dtype) || no_overlap("y", y, "w", w, false, why)) &&
           (!bias || no_overlap("y", y, "bias", *bias, false, why));
}

bool check_norm(const Tensor &x, const Tensor &w, const Tensor *b, float eps, const Tensor &y, std::string &why)
{
    if (!is_f32("x", x, why) || !is_f32("y", y, why) || !layout_ok("w", w, why) ||
        !shape_is("w", w, 1, x.cols, why) || (b && (!layout_ok("b", *b, why) || !shape_is("b", *b, 1, x.cols, why))) ||
        !same_shape("x", x, "y", y, why))
        return false;
    if (!(eps >= 0.0f) || !std::isfinite(eps)) {
        why = "eps " + std::to_string(eps) + " is not a finite number >= 0";
        return false;
    }
    return no_overlap("y", y, "x", x, false, why) && no_overlap("y", y, "w", w, false, why) &&
           (!b || no_overlap("y", y, "b", *b, false, why));
}

bool check_elementwise(const char *an, const Tensor &a, const char *bn, const Tensor *b, const Tensor &y,
                       std::string &why)
{
    if (!is_f32(an, a, why) || (b && !is_f32(bn, *b, why)) || !is_f32("y", y, why) ||
        !same_shape(an, a, "y", y, why) || (b && !same_shape(an, a, bn, *b, why)))
        return false;
    return no_overlap("y", y, an, a, true, why) && (!b || no_overlap("y", y, bn, *b, true, why));
}

bool check_embed(const Tensor &table, const int32_t *ids, int64_t n, const Tensor &y, std::string &why)
{
    if (!layout_ok("table", table, why) || !quant_layout_ok(table, why) || !is_f32("y", y, why)) return false;
    if (dtype_is_quantized(table.dtype) && overlaps_quant(y, table)) {
        why = "y " + describe(y) + " overlaps table " + describe(table);
        return false;
    }
    if (n < 0 || !shape_is("y", y, n, table.cols, why) || !host_array("ids", ids, n, why)) {
        if (n < 0) why = "n " + num(n) + " is negative";
        return false;
    }
    for (int64_t i = 0; i < n; ++i)
        if (ids[i] < 0 || ids[i] >= table.rows) {
            why = "ids[" + num(i) + "] = " + num(ids[i]) + " is outside table " + describe(table);
            return false;
        }
    return dtype_is_quantized(table.dtype) || no_overlap("y", y, "table", table, false, why);
}

bool check_rope_text(const Tensor &x, const int32_t *positions, const TextRopeParams &p, std::string &why)
{
    if (!is_f32("x", x, why) || !host_array("positions", positions, 3 * x.rows, why)) return false;
    const int s0 = p.section[0], s1 = p.section[1], s2 = p.section[2];
    if (p.n_head <= 0 || p.head_dim <= 0 || int64_t(p.n_head) * p.head_dim > x.cols || p.rotary_dim < 0 ||
        p.rotary_dim % 2 || p.rotary_dim > p.head_dim || s0 < 0 || s1 < 0 || s2 < 0 ||
        int64_t(s0) + s1 + s2 != p.rotary_dim / 2 || !(p.theta > 0.0) || !std::isfinite(p.theta)) {
        why = "n_head " + num(p.n_head) + " head_dim " + num(p.head_dim) + " rotary_dim " + num(p.rotary_dim) +
              " sections " + num(s0) + "/" + num(s1) + "/" + num(s2) + " theta " + std::to_string(p.theta) +
              " on x " + describe(x) + ": needs heads that fit in x, an even rotary_dim <= head_dim, "
              "sections >= 0 summing to rotary_dim / 2 and theta > 0";
        return false;
    }
    return true;
}

bool check_rope_vision(const Tensor &x, const int32_t *row, const int32_t *col, int n_head, int head_dim,
                       double theta, std::string &why)
{
    if (!is_f32("x", x, why) || !host_array("row", row, x.rows, why) || !host_array("col", col, x.rows, why))
        return false;
    if (n_head <= 0 || head_dim <= 0 || head_dim % 4 || int64_t(n_head) * head_dim > x.cols || !(theta > 0.0) ||
        !std::isfinite(theta)) {
        why = "n_head " + num(n_head) + " head_dim " + num(head_dim) + " theta " + std::to_string(theta) +
              " on x " + describe(x) + ": needs heads that fit in x, head_dim a multiple of 4 and theta > 0";
        return false;
    }
    return true;
}

bool check_attention(const Tensor &q, const Tensor &k, const Tensor &v, const AttentionParams &p,
                     const Tensor &out, std::string &why)
{
    if (!is_f32("q", q, why) || !is_f32("k", k, why) || !is_f32("v", v, why) || !is_f32("out", out, why))
        return false;
    if (p.n_head <= 0 || p.n_kv_head <= 0 || p.n_head % p.n_kv_head || p.head_dim <= 0 ||
        !std::isfinite(p.scale)) {
        why = "n_head " + num(p.n_head) + ", n_kv_head " + num(p.n_kv_head) + ", head_dim " + num(p.head_dim) +
              ": needs n_head a multiple of n_kv_head, head_dim > 0 and a finite scale";
        return false;
    }
    const int64_t qc = int64_t(p.n_head) * p.head_dim, kc = int64_t(p.n_kv_head) * p.head_dim;
    if (q.cols != qc || !shape_is("k", k, k.rows, kc, why) || !shape_is("v", v, k.rows, kc, why) ||
        !shape_is("out", out, q.rows, qc, why)) {
        if (q.cols != qc) why = "q " + describe(q) + ": expected " + num(qc) + " columns (n_head * head_dim)";
        return false;
    }
    const int64_t n_q = q.rows, n_kv = k.rows;
    if (p.causal) {
        if (p.kv_offset < 0 || p.kv_offset > n_kv - n_q) {
            why = "causal kv_offset " + num(p.kv_offset) + " with " + num(n_q) + " queries and " + num(n_kv) +
                  " keys: needs 0 <= kv_offset <= n_kv - n_q";
            return false;
        }
    } else if (p.n_segments != 0) {
        if (p.n_segments < 0 || !host_array("segments", p.segments, p.n_segments, why)) {
            if (p.n_segments < 0) why = "n_segments " + num(p.n_segments) + " is negative";
            return false;
        }
        int64_t sum = 0;
        for (int s = 0; s < p.n_segments; ++s) {
            if (p.segments[s] <= 0) {
                why = "segments[" + num(s) + "] = " + num(p.segments[s]) + " is not a positive length";
                return false;
            }
            sum += p.segments[s];
        }
        if (sum != n_q || n_q != n_kv) {
            why = "segments sum to " + num(sum) + " with " + num(n_q) + " queries and " + num(n_kv) +
                  " keys: needs sum == n_q == n_kv";
            return false;
        }
    } else if (n_q > 0 && n_kv == 0) {
        why = num(n_q) + " queries attend to no keys";
        return false;
    }
    return no_overlap("out", out, "q", q, false, why) && no_overlap("out", out, "k", k, false, why) &&
           no_overlap("out", out, "v", v, false, why);
}

bool check_pos_embed(const Tensor &table, int side, const int32_t *row, const int32_t *col, const int32_t *grid_h,
                     const int32_t *grid_w, const Tensor &y, std::string &why)
{
    if (!layout_ok("table", table, why) || !is_f32("y", y, why)) return false;
    if (side <= 0 || table.rows != int64_t(side) * side) {
        why = "table " + describe(table) + " with side " + num(side) + ": expected side * side rows";
        return false;
    }
    if (!shape_is("y", y, y.rows, table.cols, why)) return false;
    const int64_t n = y.rows;
    if (!host_array("row", row, n, why) || !host_array("col", col, n, why) ||
        !host_array("grid_h", grid_h, n, why) || !host_array("grid_w", grid_w, n, why))
        return false;
    for (int64_t i = 0; i < n; ++i)
        if (grid_h[i] <= 0 || grid_w[i] <= 0 || row[i] < 0 || row[i] >= grid_h[i] || col[i] < 0 ||
            col[i] >= grid_w[i]) {
            why = "patch " + num(i) + ": (row " + num(row[i]) + ", col " + num(col[i]) + ") outside its grid " +
                  num(grid_h[i]) + " x " + num(grid_w[i]);
            return false;
        }
    return no_overlap("y", y, "table", table, false, why);
}

bool check_copy(const Tensor &src, const Tensor &dst, std::string &why)
{
    if (!layout_ok("src", src, why) || !layout_ok("dst", dst, why) || !same_shape("src", src, "dst", dst, why))
        return false;
    if (src.dtype != dst.dtype) {
        why = "src " + describe(src) + " and dst " + describe(dst) + " differ in dtype";
        return false;
    }
    return no_overlap("dst", dst, "src", src, false, why);
}

bool check_transfer(const char *name, const Tensor &t, const void *host, std::string &why)
{
    if (!layout_ok(name, t, why)) return false;
    if (t.rows > 1 && t.stride != t.cols) {
        why = std::string(name) + " " + describe(t) + " is not contiguous";
        return false;
    }
    return host_array("host", host, t.numel(), why);
}

}  // namespace

// One refusal: the first fault wins, so the message names the call that
// went wrong, not one that followed from it.
#define VLM_REFUSE(op_str, kind, why) \
    do { record_fault(kind, std::string(op_str) + ": " + (why)); return; } while (0)

// Asks supports() for an op's operand dtype (and head_dim).
#define VLM_SUPPORTS(op_enum, dt, hd)                                                                 \
    do {                                                                                             \
        if (!supports(OpQuery{op_enum, dt, hd}))                                                     \
            VLM_REFUSE(op_name(op_enum), BackendFault::Unsupported,                                  \
                       std::string("the ") + name() + " backend does not support " +                 \
                           (hd ? "head_dim " + std::to_string(hd)                                     \
                               : std::string(dtype_name(dt)) + " operands"));                         \
    } while (0)

void Backend::upload_rows(const Tensor &dst, const void *host)
{
    std::string why;
    if (failed()) return;
    if (!check_transfer("dst", dst, host, why)) VLM_REFUSE("upload_rows", BackendFault::BadArgument, why);
    if (dst.numel() > 0) upload(dst.data, host, size_t(dst.numel()) * dtype_size(dst.dtype));
}

void Backend::download_rows(void *host, const Tensor &src)
{
    std::string why;
    if (failed()) return;
    if (!check_transfer("src", src, host, why)) VLM_REFUSE("download_rows", BackendFault::BadArgument, why);
    if (src.numel() > 0) download(host, src.data, size_t(src.numel()) * dtype_size(src.dtype));
}

void Backend::matmul(const Tensor &x, const Tensor &w, const Tensor *bias, Tensor &y)
{
    std::string why;
    if (failed()) return;
    if (!check_matmul(x, w, bias, y, why)) VLM_REFUSE("matmul", BackendFault::BadArgument, why);
    VLM_SUPPORTS(Op::Matmul, w.dtype, 0);
    if (bias && bias->dtype != w.dtype) VLM_SUPPORTS(Op::Matmul, bias->dtype, 0);
    run_matmul(x, w, bias, y);
}

void Backend::rms_norm(const Tensor &x, const Tensor &w, float eps, Tensor &y)
{
    std::string why;
    if (failed()) return;
    if (!check_norm(x, w, nullptr, eps, y, why)) VLM_REFUSE("rms_norm", BackendFault::BadArgument, why);
    VLM_SUPPORTS(Op::RmsNorm, w.dtype, 0);
    run_rms_norm(x, w, eps, y);
}

void Backend::layer_norm(const Tensor &x, const Tensor &w, const Tensor &b, float eps, Tensor &y)
{
    std::string why;
    if (failed()) return;
    if (!check_norm(x, w, &b, eps, y, why)) VLM_REFUSE("layer_norm", BackendFault::BadArgument, why);
    VLM_SUPPORTS(Op::LayerNorm, w.dtype, 0);
    if (b.dtype != w.dtype) VLM_SUPPORTS(Op::LayerNorm, b.dtype, 0);
    run_layer_norm(x, w, b, eps, y);
}

void Backend::add(const Tensor &a, const Tensor &b, Tensor &y)
{
    std::string why;
    if (failed()) return;
    if (!check_elementwise("a", a, "b", &b, y, why)) VLM_REFUSE("add", BackendFault::BadArgument, why);
    VLM_SUPPORTS(Op::Add, DType::F32, 0);
    run_add(a, b, y);
}

void Backend::silu_mul(const Tensor &gate, const Tensor &up, Tensor &y)
{
    std::string why;
    if (failed()) return;
    if (!check_elementwise("gate", gate, "up", &up, y, why)) VLM_REFUSE("silu_mul", BackendFault::BadArgument, why);
    VLM_SUPPORTS(Op::SiluMul, DType::F32, 0);
    run_silu_mul(gate, up, y);
}

void Backend::gelu(const Tensor &x, Tensor &y)
{
    std::string why;
    if (failed()) return;
    if (!check_elementwise("x", x, nullptr, nullptr, y, why)) VLM_REFUSE("gelu", BackendFault::BadArgument, why);
    VLM_SUPPORTS(Op::Gelu, DType::F32, 0);
    run_gelu(x, y);
}

void Backend::embed(const Tensor &table, const int32_t *ids, int64_t n, Tensor &y)
{
    std::string why;
    if (failed()) return;
    if (!check_embed(table, ids, n, y, why)) VLM_REFUSE("embed", BackendFault::BadArgument, why);
    VLM_SUPPORTS(Op::Embed, table.dtype, 0);
    run_embed(table, ids, n, y);
}

void Backend::rope_text(Tensor &x, const int32_t *positions, const TextRopeParams &p)
{
    std::string why;
    if (failed()) return;
    if (!check_rope_text(x, positions, p, why)) VLM_REFUSE("rope_text", BackendFault::BadArgument, why);
    VLM_SUPPORTS(Op::RopeText, DType::F32, 0);
    run_rope_text(x, positions, p);
}

void Backend::rope_vision(Tensor &x, const int32_t *row, const int32_t *col, int n_head, int head_dim,
                          double theta)
{
    std::string why;
    if (failed()) return;
    if (!check_rope_vision(x, row, col, n_head, head_dim, theta, why))
        VLM_REFUSE("rope_vision", BackendFault::BadArgument, why);
    VLM_SUPPORTS(Op::RopeVision, DType::F32, 0);
    run_rope_vision(x, row, col, n_head, head_dim, theta);
}

void Backend::attention(const Tensor &q, const Tensor &k, const Tensor &v, const AttentionParams &p, Tensor &out)
{
    std::string why;
    if (failed()) return;
    if (!check_attention(q, k, v, p, out, why)) VLM_REFUSE("attention", BackendFault::BadArgument, why);
    VLM_SUPPORTS(Op::Attention, DType::F32, p.head_dim);
    run_attention(q, k, v, p, out);
}

void Backend::add_pos_embed_bicubic(const Tensor &table, int side, const int32_t *row, const int32_t *col,
                                    const int32_t *grid_h, const int32_t *grid_w, Tensor &y)
{
    std::string why;
    if (failed()) return;
    if (!check_pos_embed(table, side, row, col, grid_h, grid_w, y, why))
        VLM_REFUSE("add_pos_embed_bicubic", BackendFault::BadArgument, why);
    VLM_SUPPORTS(Op::PosEmbedBicubic, table.dtype, 0);
    run_add_pos_embed_bicubic(table, side, row, col, grid_h, grid_w, y);
}

void Backend::copy(const Tensor &src, Tensor &dst)
{
    std::string why;
    if (failed()) return;
    if (!check_copy(src, dst, why)) VLM_REFUSE("copy", BackendFault::BadArgument, why);
    VLM_SUPPORTS(Op::Copy, src.dtype, 0);
    run_copy(src, dst);
}

#undef VLM_SUPPORTS
#undef VLM_REFUSE

}  // namespace vlm
