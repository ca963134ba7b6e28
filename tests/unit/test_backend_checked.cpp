// test_backend_checked.cpp: the checked op front of core/backend.h, on the
// cpu and the cuda-emu backend (neither re-checks arguments, so a refusal
// seen here is the front's): every kind of misuse of every op is refused
// with a fault that names the op, the argument and both values, and nothing
// runs; after a fault every op is skipped until recover(); supports() is
// asked (an I32 weight, a head_dim the CUDA kernels cannot do); views that
// interleave without overlapping are accepted, partial overlaps are not.
#include "backend/registry.h"
#include "core/backend.h"

#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <check.h>

using namespace vlm;

namespace {

const char *const kBackends[] = {"cpu", "cuda-emu"};

std::unique_ptr<Backend> make(const char *name)
{
    std::string err;
    BackendOptions opt;
    opt.n_threads = 2;
    auto b = make_backend(name, opt, err);
    ck_assert_msg(b != nullptr, "%s: %s", name, err.c_str());
    return b;
}

// Device tensors of one backend, filled with a known value.
struct Bufs {
    Backend &b;
    std::vector<DeviceBuffer> keep;
    explicit Bufs(Backend &be) : b(be) {}
    Tensor make(DType dt, int64_t rows, int64_t cols, float value = 1.0f)
    {
        keep.emplace_back(b, dt, rows, cols);
        Tensor t = keep.back().t;
        ck_assert(t.data != nullptr);
        if (dt == DType::F32) {
            std::vector<float> v(size_t(rows * cols), value);
            b.upload(t.data, v.data(), v.size() * 4);
        }
        return t;
    }
    std::vector<float> read(const Tensor &t)
    {
        std::vector<float> v(size_t(t.rows * t.stride));
        b.download(v.data(), t.data, v.size() * 4);
        return v;
    }
};

// One misuse: a call on fresh tensors, and what the fault must say.
struct Misuse {
    const char *what;
    const char *expect;  // substring of the fault message
    BackendFault kind;
    std::function<void(Backend &, Bufs &)> call;
};

std::vector<Misuse> misuses()
{
    std::vector<Misuse> m;
    m.push_back({"matmul x.cols != w.cols", "matmul: x (2, 8) F32 and w (3, 9) F32: x.cols != w.cols",
                 BackendFault::BadArgument, [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::F32, 2, 8), w = t.make(DType::F32, 3, 9), y = t.make(DType::F32, 2, 3);
                     b.matmul(x, w, nullptr, y);
                 }});
    m.push_back({"matmul y shape", "matmul: y (2, 4) F32: expected (2, 3)", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::F32, 2, 8), w = t.make(DType::F32, 3, 8), y = t.make(DType::F32, 2, 4);
                     b.matmul(x, w, nullptr, y);
                 }});
    m.push_back({"matmul bf16 activations", "matmul: x (2, 8) BF16: activations must be F32",
                 BackendFault::BadArgument, [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::BF16, 2, 8), w = t.make(DType::F32, 3, 8), y = t.make(DType::F32, 2, 3);
                     b.matmul(x, w, nullptr, y);
                 }});
    m.push_back({"matmul bias shape", "matmul: bias (1, 4) F32: expected (1, 3)", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::F32, 2, 8), w = t.make(DType::F32, 3, 8), y = t.make(DType::F32, 2, 3),
                            bias = t.make(DType::F32, 1, 4);
                     b.matmul(x, w, &bias, y);
                 }});
    m.push_back({"matmul in place", "matmul: y (2, 8) F32 overlaps x (2, 8) F32", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::F32, 2, 8), w = t.make(DType::F32, 8, 8);
                     b.matmul(x, w, nullptr, x);
                 }});
    m.push_back({"matmul I32 weights", " backend does not support I32 operands", BackendFault::Unsupported, [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::F32, 2, 8), w = t.make(DType::I32, 3, 8), y = t.make(DType::F32, 2, 3);
                     b.matmul(x, w, nullptr, y);
                 }});
    m.push_back({"stride below cols", "rms_norm: x (2, 8; stride 4) F32: needs 0 <= rows, cols < 2^31 and cols <= stride",
                 BackendFault::BadArgument, [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::F32, 2, 8), w = t.make(DType::F32, 1, 8), y = t.make(DType::F32, 2, 8);
                     x.stride = 4;
                     b.rms_norm(x, w, 1e-5f, y);
                 }});
    m.push_back({"rms_norm weight length", "rms_norm: w (1, 7) F32: expected (1, 8)", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::F32, 2, 8), w = t.make(DType::F32, 1, 7), y = t.make(DType::F32, 2, 8);
                     b.rms_norm(x, w, 1e-5f, y);
                 }});
    m.push_back({"rms_norm negative eps", "rms_norm: eps -1.000000 is not a finite number >= 0",
                 BackendFault::BadArgument, [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::F32, 2, 8), w = t.make(DType::F32, 1, 8), y = t.make(DType::F32, 2, 8);
                     b.rms_norm(x, w, -1.0f, y);
                 }});
    m.push_back({"layer_norm bias length", "layer_norm: b (1, 9) F32: expected (1, 8)", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::F32, 2, 8), w = t.make(DType::F32, 1, 8), bb = t.make(DType::F32, 1, 9),
                            y = t.make(DType::F32, 2, 8);
                     b.layer_norm(x, w, bb, 1e-5f, y);
                 }});
    m.push_back({"add shapes", "add: a (2, 8) F32 and y (3, 8) F32 differ in shape", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor a = t.make(DType::F32, 2, 8), c = t.make(DType::F32, 2, 8), y = t.make(DType::F32, 3, 8);
                     b.add(a, c, y);
                 }});
    m.push_back({"add partial overlap", "add: y (2, 8; stride 16) F32 overlaps a (2, 8; stride 16) F32 without being it",
                 BackendFault::BadArgument, [](Backend &b, Bufs &t) {
                     Tensor buf = t.make(DType::F32, 2, 16), c = t.make(DType::F32, 2, 8);
                     Tensor a = buf.col_slice(0, 8), y = buf.col_slice(4, 8);
                     b.add(a, c, y);
                 }});
    m.push_back({"silu_mul missing memory", "silu_mul: up (2, 8) F32 has no memory", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor g = t.make(DType::F32, 2, 8), y = t.make(DType::F32, 2, 8);
                     Tensor u = g;
                     u.data = nullptr;
                     b.silu_mul(g, u, y);
                 }});
    m.push_back({"gelu f16 output", "gelu: y (2, 8) F16: activations must be F32", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::F32, 2, 8), y = t.make(DType::F16, 2, 8);
                     b.gelu(x, y);
                 }});
    m.push_back({"embed id outside the table", "embed: ids[1] = 5 is outside table (5, 8) F32",
                 BackendFault::BadArgument, [](Backend &b, Bufs &t) {
                     Tensor table = t.make(DType::F32, 5, 8), y = t.make(DType::F32, 2, 8);
                     const int32_t ids[2] = {4, 5};
                     b.embed(table, ids, 2, y);
                 }});
    m.push_back({"embed negative id", "embed: ids[0] = -1 is outside table", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor table = t.make(DType::F32, 5, 8), y = t.make(DType::F32, 1, 8);
                     const int32_t ids[1] = {-1};
                     b.embed(table, ids, 1, y);
                 }});
    m.push_back({"embed no ids", "embed: ids: host array of 2 entries is missing", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor table = t.make(DType::F32, 5, 8), y = t.make(DType::F32, 2, 8);
                     b.embed(table, nullptr, 2, y);
                 }});
    m.push_back({"rope_text odd rotary_dim", "rope_text: n_head 2 head_dim 4 rotary_dim 3", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::F32, 1, 8);
                     const int32_t pos[3] = {0, 0, 0};
                     TextRopeParams p;
                     p.n_head = 2;
                     p.head_dim = 4;
                     p.rotary_dim = 3;
                     b.rope_text(x, pos, p);
                 }});
    m.push_back({"rope_text sections", "sections 1/1/1", BackendFault::BadArgument, [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::F32, 1, 8);
                     const int32_t pos[3] = {0, 0, 0};
                     TextRopeParams p;
                     p.n_head = 2;
                     p.head_dim = 4;
                     p.rotary_dim = 4;
                     p.section[0] = p.section[1] = p.section[2] = 1;
                     b.rope_text(x, pos, p);
                 }});
    m.push_back({"rope_vision heads beyond x", "rope_vision: n_head 3 head_dim 4 theta", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor x = t.make(DType::F32, 1, 8);
                     const int32_t r[1] = {0}, c[1] = {0};
                     b.rope_vision(x, r, c, 3, 4, 10000.0);
                 }});
    m.push_back({"attention GQA", "attention: n_head 3, n_kv_head 2, head_dim 4", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor q = t.make(DType::F32, 2, 12), k = t.make(DType::F32, 2, 8), o = t.make(DType::F32, 2, 12);
                     AttentionParams p;
                     p.n_head = 3;
                     p.n_kv_head = 2;
                     p.head_dim = 4;
                     b.attention(q, k, k, p, o);
                 }});
    m.push_back({"attention kv_offset", "attention: causal kv_offset 2 with 2 queries and 3 keys",
                 BackendFault::BadArgument, [](Backend &b, Bufs &t) {
                     Tensor q = t.make(DType::F32, 2, 8), k = t.make(DType::F32, 3, 8), o = t.make(DType::F32, 2, 8);
                     AttentionParams p;
                     p.n_head = p.n_kv_head = 2;
                     p.head_dim = 4;
                     p.kv_offset = 2;
                     b.attention(q, k, k, p, o);
                 }});
    m.push_back({"attention segments", "attention: segments sum to 3 with 4 queries and 4 keys",
                 BackendFault::BadArgument, [](Backend &b, Bufs &t) {
                     Tensor q = t.make(DType::F32, 4, 8), k = t.make(DType::F32, 4, 8), o = t.make(DType::F32, 4, 8);
                     const int32_t seg[2] = {1, 2};
                     AttentionParams p;
                     p.n_head = p.n_kv_head = 2;
                     p.head_dim = 4;
                     p.causal = false;
                     p.segments = seg;
                     p.n_segments = 2;
                     b.attention(q, k, k, p, o);
                 }});
    m.push_back({"pos_embed table side", "add_pos_embed_bicubic: table (10, 8) F32 with side 3: expected side * side rows",
                 BackendFault::BadArgument, [](Backend &b, Bufs &t) {
                     Tensor table = t.make(DType::F32, 10, 8), y = t.make(DType::F32, 1, 8);
                     const int32_t z[1] = {0}, g[1] = {2};
                     b.add_pos_embed_bicubic(table, 3, z, z, g, g, y);
                 }});
    m.push_back({"pos_embed patch outside grid", "add_pos_embed_bicubic: patch 0: (row 2, col 0) outside its grid 2 x 2",
                 BackendFault::BadArgument, [](Backend &b, Bufs &t) {
                     Tensor table = t.make(DType::F32, 9, 8), y = t.make(DType::F32, 1, 8);
                     const int32_t r[1] = {2}, c[1] = {0}, g[1] = {2};
                     b.add_pos_embed_bicubic(table, 3, r, c, g, g, y);
                 }});
    m.push_back({"copy dtypes", "copy: src (2, 8) F32 and dst (2, 8) BF16 differ in dtype", BackendFault::BadArgument,
                 [](Backend &b, Bufs &t) {
                     Tensor s = t.make(DType::F32, 2, 8), d = t.make(DType::BF16, 2, 8);
                     b.copy(s, d);
                 }});
    m.push_back({"upload into a strided view", "upload_rows: dst (2, 4; stride 8) F32 is not contiguous",
                 BackendFault::BadArgument, [](Backend &b, Bufs &t) {
                     Tensor d = t.make(DType::F32, 2, 8).col_slice(0, 4);
                     std::vector<float> host(8);
                     b.upload_rows(d, host.data());
                 }});
    return m;
}

}  // namespace

START_TEST(every_misuse_is_refused_with_a_reason)
{
    int refused = 0;
    for (const char *name : kBackends) {
        auto be = make(name);
        for (const Misuse &m : misuses()) {
            Bufs bufs(*be);
            m.call(*be, bufs);
            ck_assert_msg(be->failed(), "%s: %s was not refused", name, m.what);
            ck_assert_msg(be->fault() == m.kind, "%s: %s: fault %s, expected %s", name, m.what,
                          fault_name(be->fault()), fault_name(m.kind));
            ck_assert_msg(be->fault_message().find(m.expect) != std::string::npos,
                          "%s: %s: message \"%s\" lacks \"%s\"", name, m.what, be->fault_message().c_str(), m.expect);
            std::printf("[%s] %-28s -> %s: %s\n", name, m.what, fault_name(be->fault()), be->fault_message().c_str());
            std::string err;
            ck_assert(be->recover(err));
            ck_assert(!be->failed() && be->fault_message().empty());
            ++refused;
        }
    }
    ck_assert_int_eq(refused, 2 * int(misuses().size()));
}
END_TEST

START_TEST(ops_after_a_fault_are_skipped_until_recover)
{
    for (const char *name : kBackends) {
        auto be = make(name);
        Bufs t(*be);
        Tensor a = t.make(DType::F32, 2, 8, 1.0f), b = t.make(DType::F32, 2, 8, 2.0f), y = t.make(DType::F32, 2, 8, 0.0f);
        Tensor wrong = t.make(DType::F32, 3, 8);
        be->add(a, b, wrong);  // refused
        ck_assert(be->failed());
        const std::string first = be->fault_message();
        be->add(a, b, y);      // skipped: y keeps its zeros
        be->gelu(wrong, wrong);
        ck_assert_str_eq(be->fault_message().c_str(), first.c_str());  // the first fault is kept
        std::vector<float> got = t.read(y);
        for (float v : got) ck_assert(v == 0.0f);
        std::string err;
        ck_assert(be->recover(err));
        be->add(a, b, y);      // runs again
        ck_assert(!be->failed());
        got = t.read(y);
        for (float v : got) ck_assert(v == 3.0f);
        std::printf("[%s] after \"%s\": later ops skipped, recover() runs them again\n", name, first.c_str());
    }
}
END_TEST

START_TEST(views_and_aliases)
{
    for (const char *name : kBackends) {
        auto be = make(name);
        Bufs t(*be);
        // gate and up: interleaved column slices of one fused buffer, output elsewhere.
        Tensor fused = t.make(DType::F32, 3, 16, 0.5f), y = t.make(DType::F32, 3, 8);
        be->silu_mul(fused.col_slice(0, 8), fused.col_slice(8, 8), y);
        ck_assert_msg(!be->failed(), "%s", be->fault_message().c_str());
        // the output as one column slice and an input as the other: no shared element.
        Tensor left = fused.col_slice(0, 8), right = fused.col_slice(8, 8);
        be->gelu(left, right);
        ck_assert_msg(!be->failed(), "%s", be->fault_message().c_str());
        // y may be an element-wise op's input itself.
        be->add(y, y, y);
        ck_assert_msg(!be->failed(), "%s", be->fault_message().c_str());
        // rows 1..2 of a buffer into rows 0..1 of itself share row 1.
        Tensor cache = t.make(DType::F32, 4, 8);
        Tensor dst = cache.row_slice(0, 2);
        be->copy(cache.row_slice(1, 2), dst);
        ck_assert(be->failed() && be->fault_message().find("copy: dst (2, 8) F32 overlaps src") == 0);
        std::string err;
        ck_assert(be->recover(err));
        // a different pitch: the spans decide.
        Tensor flat = cache;
        flat.rows = 1;
        flat.cols = flat.stride = 32;
        Tensor wide = t.make(DType::F32, 1, 32);
        be->copy(flat, wide);
        ck_assert_msg(!be->failed(), "%s", be->fault_message().c_str());
    }
}
END_TEST

START_TEST(supports_is_asked)
{
    auto cpu = make("cpu"), cuda = make("cuda-emu");
    for (Backend *b : {cpu.get(), cuda.get()}) {
        for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
            ck_assert(b->supports({Op::Matmul, dt, 0}));
            ck_assert(b->supports({Op::Embed, dt, 0}));
        }
        ck_assert(!b->supports({Op::Matmul, DType::I32, 0}));
        ck_assert(!b->supports({Op::Add, DType::BF16, 0}));
        ck_assert(b->supports({Op::Copy, DType::I32, 0}));
        ck_assert(b->supports({Op::Attention, DType::F32, 128}));
    }
    // The CUDA attention kernels hold a head in registers and shared memory up to 128.
    ck_assert(cpu->supports({Op::Attention, DType::F32, 160}));
    ck_assert(!cuda->supports({Op::Attention, DType::F32, 160}));
    Bufs t(*cuda);
    Tensor q = t.make(DType::F32, 1, 160), o = t.make(DType::F32, 1, 160);
    AttentionParams p;
    p.n_head = p.n_kv_head = 1;
    p.head_dim = 160;
    cuda->attention(q, q.row_slice(0, 1), q, p, o);
    ck_assert_int_eq(int(cuda->fault()), int(BackendFault::Unsupported));
    ck_assert_str_eq(cuda->fault_message().c_str(),
                     "attention: the cuda-emu backend does not support head_dim 160");
    std::printf("%s\n", cuda->fault_message().c_str());
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv)
{
    return vlm_check_main(argc, argv, "backend_checked", {
        {"front", 0, {
            every_misuse_is_refused_with_a_reason,
            ops_after_a_fault_are_skipped_until_recover,
            views_and_aliases,
            supports_is_asked,
        }},
    });
}
