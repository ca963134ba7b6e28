// test_kernels.cpp: every CUDA kernel (kernels/*.cu, run on the SIMT emulator
// in this build) against its CPU reference (<op>_ref) on fresh random inputs:
// odd sizes, sizes that are not multiples of the block size, strided views,
// and each weight dtype. Every check prints the max abs diff it measured.
//
// Tolerances (inputs uniform in [-1, 1)):
//  - copies, gathers, conversions, bias broadcast, add: bit-exact (0).
//  - row reductions (rms/layer norm), rotaries, activations, bicubic: the
//    kernels sum in f32 where the references use double: 2e-5 * (1 + |ref|).
//  - gemv and attention: f32 dot products of length k against double:
//    1e-6 * k * (1 + |ref|), at least 1e-5.
//  - sampling: the reference is the same algorithm on the host; tokens
//    must be identical.
// Weight dtypes BF16/F16 are exact in f32 once widened, so the tolerances do
// not change with them.
#include "core/backend.h"
#include "core/cpu_ops_ref.h"
#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <check.h>

using namespace vlm;
using namespace vlm::kern;

namespace {

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 6364136223846793005ull + 1442695040888963407ull) {}
    uint32_t next()
    {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return uint32_t(s >> 32);
    }
    float uniform() { return float(int32_t(next())) / 2147483648.0f; }  // [-1, 1)
    int below(int n) { return int(next() % uint32_t(n)); }
};

// A host tensor and its device twin with the same layout.
struct Pair {
    std::vector<uint8_t> host_bytes;
    Tensor host, dev;
    size_t bytes = 0;

    Pair(DType dt, int64_t rows, int64_t cols, int64_t stride = -1)
    {
        if (stride < 0) stride = cols;
        bytes = std::max<size_t>(1, size_t(rows) * size_t(stride) * dtype_size(dt));
        host_bytes.assign(bytes, 0);
        host = Tensor{host_bytes.data(), dt, rows, cols, stride};
        dev = host;
        void *p = nullptr;
        ck_assert_int_eq(cudaMalloc(&p, bytes), cudaSuccess);
        dev.data = p;
        ck_assert_int_eq(cudaMemset(p, 0, bytes), cudaSuccess);
    }
    ~Pair() { cudaFree(dev.data); }
    Pair(const Pair &) = delete;
    Pair &operator=(const Pair &) = delete;

    void fill(Rng &rng, float scale = 1.0f)
    {
        for (int64_t r = 0; r < host.rows; r++)
            for (int64_t c = 0; c < host.stride; c++) set(r, c, rng.uniform() * scale);
        upload();
    }
    void set(int64_t r, int64_t c, float v)
    {
        size_t i = size_t(r) * size_t(host.stride) + size_t(c);
        switch (host.dtype) {
        case DType::F32: reinterpret_cast<float *>(host_bytes.data())[i] = v; break;
        case DType::BF16: reinterpret_cast<uint16_t *>(host_bytes.data())[i] = f32_to_bf16(v); break;
        case DType::F16: reinterpret_cast<uint16_t *>(host_bytes.data())[i] = f32_to_f16(v); break;
        case DType::I32: reinterpret_cast<int32_t *>(host_bytes.data())[i] = int32_t(v); break;
        }
    }
    void upload() { ck_assert_int_eq(cudaMemcpy(dev.data, host.data, bytes, cudaMemcpyHostToDevice), cudaSuccess); }
    // Device contents as a host tensor with the same layout.
    std::vector<uint8_t> download() const
    {
        std::vector<uint8_t> out(bytes);
        ck_assert_int_eq(cudaMemcpy(out.data(), dev.data, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
        return out;
    }
};

// Device copy of a host int array.
struct DevInts {
    int32_t *p = nullptr;
    explicit DevInts(const std::vector<int32_t> &v)
    {
        ck_assert_int_eq(cudaMalloc(&p, std::max<size_t>(1, v.size()) * 4), cudaSuccess);
        if (!v.empty()) ck_assert_int_eq(cudaMemcpy(p, v.data(), v.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
    }
    ~DevInts() { cudaFree(p); }
};

struct DevFloats {
    float *p = nullptr;
    explicit DevFloats(const std::vector<float> &v)
    {
        ck_assert_int_eq(cudaMalloc(&p, std::max<size_t>(1, v.size()) * 4), cudaSuccess);
        if (!v.empty()) ck_assert_int_eq(cudaMemcpy(p, v.data(), v.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
    }
    ~DevFloats() { cudaFree(p); }
};

// Largest violation of |dev - ref| <= tol_abs + tol_rel * |ref| over the
// visible elements of `pair` (ref = its host tensor after the reference ran).
// Returns the max abs diff; fails the test on a violation or a NaN.
float compare(const char *what, const Pair &pair, float tol_abs, float tol_rel)
{
    std::vector<uint8_t> got_bytes = pair.download();
    Tensor got = pair.host;
    got.data = got_bytes.data();
    float max_diff = 0.0f;
    for (int64_t r = 0; r < pair.host.rows; r++)
        for (int64_t c = 0; c < pair.host.cols; c++) {
            float want = tensor_elem(pair.host, r, c), have = tensor_elem(got, r, c);
            float d = std::fabs(want - have);
            ck_assert_msg(d <= tol_abs + tol_rel * std::fabs(want),
                          "%s: element (%lld, %lld) is %.9g, reference %.9g", what, (long long)r,
                          (long long)c, have, want);
            max_diff = std::max(max_diff, d);
        }
    std::printf("%-58s max abs diff %.3g\n", what, max_diff);
    return max_diff;
}

void must(bool ok, const std::string &err)
{
    ck_assert_msg(ok, "launch failed: %s", err.c_str());
    ck_assert_int_eq(cudaDeviceSynchronize(), cudaSuccess);
}

const DType kWeightTypes[] = {DType::F32, DType::BF16, DType::F16};
const int64_t kRows[] = {1, 3, 17};
const int64_t kCols[] = {1, 7, 64, 130, 257, 1100};

std::string label(const char *op, DType dt, int64_t rows, int64_t cols, int64_t stride)
{
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s %s %lldx%lld stride %lld", op, dtype_name(dt), (long long)rows,
                  (long long)cols, (long long)stride);
    return buf;
}

}  // namespace

START_TEST(rms_norm_matches_reference)
{
    Rng rng(1);
    for (DType wt : kWeightTypes)
        for (int64_t n : kRows)
            for (int64_t d : kCols) {
                const int64_t stride = d + (n % 2) * 5;  // odd rows count: strided view
                Pair x(DType::F32, n, d, stride), w(wt, 1, d), y(DType::F32, n, d);
                x.fill(rng);
                w.fill(rng);
                std::string err;
                must(launch_rms_norm({x.dev, w.dev, y.dev, 1e-5f}, nullptr, err), err);
                rms_norm_ref({x.host, w.host, y.host, 1e-5f});
                compare(label("rms_norm", wt, n, d, stride).c_str(), y, 2e-5f, 2e-5f);
            }
}
END_TEST

START_TEST(layer_norm_matches_reference)
{
    Rng rng(2);
    for (DType wt : kWeightTypes)
        for (int64_t n : kRows)
            for (int64_t d : kCols) {
                Pair x(DType::F32, n, d, d + 3), w(wt, 1, d), b(wt, 1, d), y(DType::F32, n, d);
                x.fill(rng, 3.0f);
                for (int64_t r = 0; r < n; r++)  // a common offset: the two-pass variance matters
                    for (int64_t c = 0; c < d; c++) x.set(r, c, tensor_elem(x.host, r, c) + 10.0f);
                x.upload();
                w.fill(rng);
                b.fill(rng);
                std::string err;
                must(launch_layer_norm({x.dev, w.dev, b.dev, y.dev, 1e-5f}, nullptr, err), err);
                layer_norm_ref({x.host, w.host, b.host, y.host, 1e-5f});
                compare(label("layer_norm", wt, n, d, d + 3).c_str(), y, 2e-5f, 2e-5f);
            }
}
END_TEST

START_TEST(elementwise_match_reference)
{
    Rng rng(3);
    for (int64_t n : kRows)
        for (int64_t d : kCols) {
            // gate/up as column views of one fused (n, 2d) tensor, like the model's gate_up.
            Pair gu(DType::F32, n, 2 * d), y(DType::F32, n, d), a(DType::F32, n, d, d + 1);
            gu.fill(rng, 4.0f);
            a.fill(rng, 4.0f);
            Tensor g_dev = gu.dev.col_slice(0, d), u_dev = gu.dev.col_slice(d, d);
            Tensor g_host = gu.host.col_slice(0, d), u_host = gu.host.col_slice(d, d);
            std::string err;
            must(launch_silu_mul({g_dev, u_dev, y.dev}, nullptr, err), err);
            silu_mul_ref({g_host, u_host, y.host});
            compare(label("silu_mul", DType::F32, n, d, 2 * d).c_str(), y, 2e-6f, 2e-6f);

            must(launch_gelu({a.dev, y.dev}, nullptr, err), err);
            gelu_ref({a.host, y.host});
            compare(label("gelu", DType::F32, n, d, d + 1).c_str(), y, 2e-6f, 2e-6f);

            // y = y + a, in place (y aliases the first operand), from identical inputs.
            ck_assert_int_eq(cudaMemcpy(y.dev.data, y.host.data, y.bytes, cudaMemcpyHostToDevice), cudaSuccess);
            must(launch_add({y.dev, a.dev, y.dev}, nullptr, err), err);
            add_ref({y.host, a.host, y.host});
            compare(label("add (in place)", DType::F32, n, d, d).c_str(), y, 0.0f, 0.0f);
        }
}
END_TEST

START_TEST(gathers_copies_and_conversions_are_exact)
{
    Rng rng(4);
    for (DType wt : kWeightTypes)
        for (int64_t d : kCols) {
            const int64_t vocab = 50, n = 9;
            Pair table(wt, vocab, d), y(DType::F32, n, d);
            table.fill(rng);
            std::vector<int32_t> ids(static_cast<size_t>(n));
            for (auto &id : ids) id = rng.below(int(vocab));
            DevInts dids(ids);
            std::string err;
            must(launch_embed({table.dev, y.dev, dids.p, n}, nullptr, err), err);
            embed_ref({table.host, y.host, ids.data(), n});
            compare(label("embed", wt, n, d, d).c_str(), y, 0.0f, 0.0f);

            // KV-cache style write: rows into the middle of a wider-strided cache.
            Pair src(wt, n, d, d + 1), cache(wt, 40, d, d + 8);
            src.fill(rng);
            cache.fill(rng);
            Tensor dst_dev = cache.dev.row_slice(5, n), dst_host = cache.host.row_slice(5, n);
            must(launch_copy_rows({src.dev, dst_dev}, nullptr, err), err);
            copy_rows_ref({src.host, dst_host});
            compare(label("copy_rows", wt, n, d, d + 8).c_str(), cache, 0.0f, 0.0f);

            for (DType to : kWeightTypes) {
                Pair from(DType::F32, n, d, d + 2), out(to, n, d);
                from.fill(rng, 100.0f);
                must(launch_convert({from.dev, out.dev}, nullptr, err), err);
                convert_ref({from.host, out.host});
                compare(label(("convert f32->" + std::string(dtype_name(to))).c_str(), to, n, d, d).c_str(),
                        out, 0.0f, 0.0f);
            }
            Pair bias(wt, 1, d), yb(DType::F32, n, d, d + 4);
            bias.fill(rng);
            must(launch_bias_rows({bias.dev, yb.dev}, nullptr, err), err);
            bias_rows_ref({bias.host, yb.host});
            compare(label("bias_rows", wt, n, d, d + 4).c_str(), yb, 0.0f, 0.0f);
        }
}
END_TEST

START_TEST(gemv_matches_reference)
{
    Rng rng(5);
    const int64_t ks[] = {1, 8, 13, 64, 136, 520};
    const int64_t ms[] = {1, 9, 33};
    for (DType wt : kWeightTypes)
        for (int64_t n : {1, 2, 3, 5, 9, 16})
            for (int64_t k : ks)
                for (int64_t m : ms) {
                    Pair x(DType::F32, n, k, k % 8 ? k + 1 : k), w(wt, m, k), b(wt, 1, m),
                        y(DType::F32, n, m, m + 2);
                    x.fill(rng);
                    w.fill(rng);
                    b.fill(rng);
                    const bool with_bias = (n + m) % 2 == 0;
                    GemvParams dp{x.dev, w.dev, y.dev, with_bias ? b.dev : Tensor{}};
                    GemvParams hp{x.host, w.host, y.host, with_bias ? b.host : Tensor{}};
                    std::string err;
                    must(launch_gemv(dp, nullptr, err), err);
                    gemv_ref(hp);
                    const float tol = std::max(1e-5f, 1e-6f * float(k));
                    compare(label(with_bias ? "gemv+bias" : "gemv", wt, n, k, m).c_str(), y, tol, tol);
                }
}
END_TEST

START_TEST(rotaries_match_reference)
{
    Rng rng(6);
    // text M-RoPE: GLM's partial rotary (rotary_dim = head_dim / 2), odd sections.
    struct TextCase { int n_head, head_dim, rotary_dim, s0, s1, s2; };
    for (TextCase tc : {TextCase{4, 16, 8, 2, 1, 1}, TextCase{3, 128, 64, 8, 12, 12}, TextCase{2, 10, 10, 1, 2, 2}})
        for (int64_t n : {1, 5, 70}) {
            const int64_t cols = int64_t(tc.n_head) * tc.head_dim;
            Pair x(DType::F32, n, cols, 3 * cols);  // q as a view of fused qkv
            x.fill(rng);
            std::vector<int32_t> pos(size_t(3 * n));
            for (auto &p : pos) p = rng.below(3000);
            TextRopeParams rp;
            rp.n_head = tc.n_head;
            rp.head_dim = tc.head_dim;
            rp.rotary_dim = tc.rotary_dim;
            rp.theta = 500000.0;
            rp.section[0] = tc.s0;
            rp.section[1] = tc.s1;
            rp.section[2] = tc.s2;
            std::vector<float> inv(size_t(tc.rotary_dim / 2));
            rope_inv_freq(rp.theta, rp.rotary_dim, inv.data());
            DevInts dpos(pos);
            DevFloats dinv(inv);
            std::string err;
            must(launch_rope_text({x.dev, dpos.p, dinv.p, rp}, nullptr, err), err);
            rope_text_ref({x.host, pos.data(), inv.data(), rp});
            compare(label("rope_text", DType::F32, n, cols, 3 * cols).c_str(), x, 2e-5f, 2e-5f);
        }
    for (int head_dim : {8, 16, 128})
        for (int64_t n : {1, 6, 37}) {
            const int n_head = head_dim == 128 ? 3 : 2;
            const int64_t cols = int64_t(n_head) * head_dim;
            Pair x(DType::F32, n, cols, cols + 4);
            x.fill(rng);
            std::vector<int32_t> row(static_cast<size_t>(n)), col(static_cast<size_t>(n));
            for (auto &v : row) v = rng.below(80);
            for (auto &v : col) v = rng.below(80);
            std::vector<float> inv(size_t(head_dim / 4));
            rope_inv_freq(10000.0, head_dim / 2, inv.data());
            DevInts drow(row), dcol(col);
            DevFloats dinv(inv);
            std::string err;
            RopeVisionParams dp{x.dev, drow.p, dcol.p, dinv.p, n_head, head_dim};
            RopeVisionParams hp{x.host, row.data(), col.data(), inv.data(), n_head, head_dim};
            must(launch_rope_vision(dp, nullptr, err), err);
            rope_vision_ref(hp);
            compare(label("rope_vision", DType::F32, n, cols, cols + 4).c_str(), x, 2e-5f, 2e-5f);
        }
}
END_TEST

START_TEST(pos_embed_bicubic_matches_reference)
{
    Rng rng(7);
    for (DType wt : kWeightTypes)
        for (int side : {3, 6})
            for (int64_t d : {5, 64, 300}) {
                // Two images of different grids, like a two-image request.
                std::vector<int32_t> row, col, gh, gw;
                for (auto [h, w] : {std::pair<int, int>{4, 6}, std::pair<int, int>{10, 2}})
                    for (int r = 0; r < h; r++)
                        for (int c = 0; c < w; c++) {
                            row.push_back(r);
                            col.push_back(c);
                            gh.push_back(h);
                            gw.push_back(w);
                        }
                const int64_t n = int64_t(row.size());
                Pair table(wt, int64_t(side) * side, d), y(DType::F32, n, d);
                table.fill(rng);
                y.fill(rng);  // accumulates
                DevInts drow(row), dcol(col), dgh(gh), dgw(gw);
                PosEmbedParams dp{table.dev, y.dev, side, drow.p, dcol.p, dgh.p, dgw.p};
                PosEmbedParams hp{table.host, y.host, side, row.data(), col.data(), gh.data(), gw.data()};
                std::string err;
                must(launch_pos_embed_bicubic(dp, nullptr, err), err);
                pos_embed_bicubic_ref(hp);
                compare(label("pos_embed_bicubic", wt, n, d, side).c_str(), y, 2e-5f, 2e-5f);
            }
}
END_TEST

namespace {

// One attention case on both kernels (prefill and decode) against the reference.
void attention_case(Rng &rng, int64_t n_q, int64_t n_kv, int n_head, int n_kv_head, int D, bool causal,
                    const std::vector<int32_t> &segments)
{
    const int64_t qc = int64_t(n_head) * D, kc = int64_t(n_kv_head) * D;
    Pair q(DType::F32, n_q, qc, qc + kc * 2), k(DType::F32, n_kv, kc, kc + 3), v(DType::F32, n_kv, kc),
        out(DType::F32, n_q, qc);
    q.fill(rng, 2.0f);
    k.fill(rng, 2.0f);
    v.fill(rng);
    AttentionParams ap;
    ap.n_head = n_head;
    ap.n_kv_head = n_kv_head;
    ap.head_dim = D;
    ap.scale = 1.0f / std::sqrt(float(D));
    ap.causal = causal;
    ap.kv_offset = n_kv - n_q;
    std::vector<int32_t> lo, hi;
    int64_t start = 0;
    for (int32_t len : segments) {
        for (int32_t i = 0; i < len; i++) {
            lo.push_back(int32_t(start));
            hi.push_back(int32_t(start + len));
        }
        start += len;
    }
    DevInts dlo(lo), dhi(hi);
    const bool seg = !segments.empty();
    AttentionKernelParams hp{q.host, k.host, v.host, out.host, ap, seg ? lo.data() : nullptr,
                             seg ? hi.data() : nullptr, nullptr};
    attention_ref(hp);
    AttentionKernelParams dp{q.dev, k.dev, v.dev, out.dev, ap, seg ? dlo.p : nullptr, seg ? dhi.p : nullptr, nullptr};
    // Split-KV decode needs a workspace; cases with >= 256 keys exercise it.
    const size_t ws_floats = attention_decode_workspace_floats(dp);
    DevFloats ws(std::vector<float>(std::max<size_t>(ws_floats, 1), 0.0f));
    const float tol = std::max(1e-5f, 1e-6f * float(D + n_kv));
    char buf[160];
    for (int which = 0; which < (ws_floats ? 3 : 2); which++) {
        std::string err;
        ck_assert_int_eq(cudaMemset(out.dev.data, 0xff, out.bytes), cudaSuccess);  // NaN: must be overwritten
        AttentionKernelParams run = dp;
        if (which == 2) run.workspace = ws.p;
        must(which == 0 ? launch_attention_prefill(run, nullptr, err) : launch_attention_decode(run, nullptr, err),
             err);
        std::snprintf(buf, sizeof buf, "attention %s q%lld kv%lld h%d/%d D%d %s",
                      which == 0 ? "prefill" : (which == 1 ? "decode " : "decode split-KV"),
                      (long long)n_q, (long long)n_kv, n_head, n_kv_head, D,
                      causal ? "causal" : (seg ? "segments" : "full"));
        compare(buf, out, tol, tol);
    }
}

}  // namespace

START_TEST(attention_matches_reference)
{
    Rng rng(8);
    // causal prefill from an empty cache, with odd lengths around the 16/32 tiles
    attention_case(rng, 1, 1, 2, 1, 16, true, {});
    attention_case(rng, 17, 17, 4, 2, 16, true, {});
    attention_case(rng, 40, 40, 2, 2, 128, true, {});
    attention_case(rng, 33, 33, 3, 1, 24, true, {});
    // chunked prefill / decode after a cache: kv_offset > 0
    attention_case(rng, 5, 70, 4, 2, 16, true, {});
    attention_case(rng, 1, 100, 8, 2, 64, true, {});
    attention_case(rng, 2, 37, 4, 1, 128, true, {});
    // long caches: split-KV decode (uneven last split)
    attention_case(rng, 1, 700, 8, 2, 128, true, {});
    attention_case(rng, 3, 301, 4, 2, 64, true, {});
    attention_case(rng, 2, 520, 2, 1, 16, false, {260, 260});
    // vision: full and block-diagonal segments
    attention_case(rng, 20, 20, 2, 2, 8, false, {});
    attention_case(rng, 45, 45, 2, 2, 16, false, {16, 4, 25});
    attention_case(rng, 36, 36, 3, 3, 128, false, {20, 16});
}
END_TEST

START_TEST(sampling_matches_reference)
{
    Rng rng(9);
    for (int64_t vocab : {1, 7, 300, 1500, 4099}) {
        const int64_t rows = 6;
        Pair logits(DType::F32, rows, vocab, vocab + 1);
        logits.fill(rng, 6.0f);
        // ties in row 0: the lowest id must win under greedy
        logits.set(0, vocab / 2, 7.0f);
        logits.set(0, vocab - 1, 7.0f);
        logits.upload();
        struct Cfg { float t; int k; float p; };
        for (Cfg cfg : {Cfg{0.0f, 0, 1.0f}, Cfg{1.0f, 0, 1.0f}, Cfg{0.7f, 5, 1.0f}, Cfg{1.3f, 0, 0.8f},
                        Cfg{1.0f, 50, 0.9f}, Cfg{2.0f, 1, 1.0f}})
            for (uint64_t seed : {0ull, 42ull, 1234567ull}) {
                int32_t *dout = nullptr;
                ck_assert_int_eq(cudaMalloc(&dout, rows * 4), cudaSuccess);
                std::vector<int32_t> got(static_cast<size_t>(rows)), want(static_cast<size_t>(rows));
                SampleParams dp{logits.dev, dout, cfg.t, cfg.k, cfg.p, seed};
                SampleParams hp{logits.host, want.data(), cfg.t, cfg.k, cfg.p, seed};
                std::string err;
                must(launch_sample(dp, nullptr, err), err);
                sample_ref(hp);
                ck_assert_int_eq(cudaMemcpy(got.data(), dout, rows * 4, cudaMemcpyDeviceToHost), cudaSuccess);
                cudaFree(dout);
                for (int64_t r = 0; r < rows; r++) {
                    ck_assert_msg(got[size_t(r)] == want[size_t(r)],
                                  "sample vocab %lld t %g k %d p %g seed %llu row %lld: %d, reference %d",
                                  (long long)vocab, cfg.t, cfg.k, cfg.p, (unsigned long long)seed,
                                  (long long)r, got[size_t(r)], want[size_t(r)]);
                    ck_assert(got[size_t(r)] >= 0 && got[size_t(r)] < vocab);
                    // Truncation is respected: the token is among the top k.
                    if (cfg.k > 0) {
                        float mine = tensor_elem(logits.host, r, got[size_t(r)]);
                        int64_t above = 0;
                        for (int64_t c = 0; c < vocab; c++) above += tensor_elem(logits.host, r, c) > mine;
                        ck_assert_msg(above < cfg.k, "token outside the top %d", cfg.k);
                    }
                    // (top_k = 1 keeps every token tied at the top: row 0 has a tie.)
                    if (cfg.t == 0.0f || (cfg.k == 1 && r > 0)) {
                        int64_t best = 0;
                        for (int64_t c = 1; c < vocab; c++)
                            if (tensor_elem(logits.host, r, c) > tensor_elem(logits.host, r, best)) best = c;
                        ck_assert_int_eq(got[size_t(r)], best);
                    }
                }
            }
        std::printf("sample vocab %-6lld 6 configs x 3 seeds x %lld rows: identical to reference\n",
                    (long long)vocab, (long long)rows);
    }
}
END_TEST

START_TEST(launchers_reject_bad_arguments)
{
    Pair x(DType::BF16, 2, 8), w(DType::F32, 1, 8), y(DType::F32, 2, 8);
    std::string err;
    ck_assert(!launch_rms_norm({x.dev, w.dev, y.dev, 1e-5f}, nullptr, err));
    ck_assert_msg(err.find("rms_norm") != std::string::npos, "%s", err.c_str());
    Pair big(DType::F32, 17, 8), wm(DType::F32, 4, 8), ym(DType::F32, 17, 4);
    ck_assert(!launch_gemv({big.dev, wm.dev, ym.dev, Tensor{}}, nullptr, err));
    AttentionParams ap;
    ap.n_head = 2;
    ap.n_kv_head = 1;
    ap.head_dim = 256;
    Pair q(DType::F32, 1, 512), kv(DType::F32, 4, 256), o(DType::F32, 1, 512);
    ck_assert(!launch_attention_prefill({q.dev, kv.dev, kv.dev, o.dev, ap, nullptr, nullptr}, nullptr, err));
    ck_assert_msg(err.find("head_dim") != std::string::npos, "%s", err.c_str());
    Pair l(DType::F32, 1, 10);
    ck_assert(!launch_sample({l.dev, nullptr, 1.0f, 0, 0.0f, 0}, nullptr, err));
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv)
{
    return vlm_check_main(argc, argv, "kernels", {
        {"vs_reference", 600, {
            rms_norm_matches_reference,
            layer_norm_matches_reference,
            elementwise_match_reference,
            gathers_copies_and_conversions_are_exact,
            gemv_matches_reference,
            rotaries_match_reference,
            pos_embed_bicubic_matches_reference,
            attention_matches_reference,
            sampling_matches_reference,
            launchers_reject_bad_arguments,
        }},
    });
}
