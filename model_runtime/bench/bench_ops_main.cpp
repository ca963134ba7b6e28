// bench_ops_main.cpp: `bench-ops`: the cpu backend's matmul against this
// machine's measured limits. Prints the read bandwidth (multi-threaded
// streaming read of 1 GiB), the bf16 dot-product and fp32 FMA peaks
// (register-resident loops on all threads), then y = x W^T for bf16 W of
// 14336x4096 and 4096x14336 at n = 1, 8, 16, 512: best time of several runs,
// achieved GB/s and GFLOP/s, and efficiency against the floor (bandwidth
// floor = time to stream the weight bytes; compute floor = 2nmk / bf16
// peak), each measured right next to the run it judges.
// Needs AVX-512; run on an otherwise idle machine.
#include "core/backend.h"
#include "backend/backend_cpu.h"
#include "bench/cpu_bench.h"
#include "core/cpu_ops_ref.h"
#include "backend/cpu_thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace vlm;

static double now_s()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class F>
static double best_of(int reps, F &&f)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        f();
        best = std::min(best, now_s() - t0);
    }
    return best;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? std::atoi(argv[1]) : 0;
    if (cpu_best_isa() != CpuIsa::Avx512) {
        std::fprintf(stderr, "bench-ops: needs AVX-512 (this CPU: %s)\n", cpu_isa_name(cpu_best_isa()));
        return 1;
    }
    CpuThreadPool pool(threads);
    const int nt = pool.size();
    volatile float sink = 0;

    // ---- read bandwidth ----
    const size_t bytes = size_t(1) << 30;
    char *buf = static_cast<char *>(std::aligned_alloc(64, bytes));
    if (!buf) return 1;
    std::memset(buf, 1, bytes);
    const size_t per = bytes / size_t(nt) / 256 * 256;
    double t_bw = best_of(5, [&] {
        pool.for_each(nt, [&](int64_t c, int) { sink = sink + bench_stream_read_avx512(buf + size_t(c) * per, per); });
    });
    std::free(buf);
    const double bw = double(per) * nt / t_bw;  // bytes/s

    // ---- compute peaks ----
    const int64_t iters = 20000000;
    double t_dp = best_of(3, [&] { pool.for_each(nt, [&](int64_t, int) { sink = sink + bench_dpbf16_loop_avx512(iters); }); });
    double t_fma = best_of(3, [&] { pool.for_each(nt, [&](int64_t, int) { sink = sink + bench_fma_loop_avx512(iters); }); });
    const double bf16_peak = double(iters) * 16 * 64 * nt / t_dp;
    const double fma_peak = double(iters) * 16 * 32 * nt / t_fma;
    std::printf("threads %d, avx512_bf16 %s\n", nt, cpu_has_avx512_bf16() ? "yes" : "no");
    std::printf("read bandwidth        %8.1f GB/s\n", bw / 1e9);
    std::printf("bf16 dot peak         %8.1f GFLOP/s (vdpbf16ps)\n", bf16_peak / 1e9);
    std::printf("fp32 FMA peak         %8.1f GFLOP/s\n\n", fma_peak / 1e9);

    // ---- matmul ----
    std::string err;
    BackendOptions opt;
    opt.n_threads = nt;
    auto be = make_cpu_backend(opt, err);
    auto be_fma = make_cpu_backend_isa(opt, CpuIsa::Avx512, false, err);
    if (!be || !be_fma) {
        std::fprintf(stderr, "bench-ops: %s\n", err.c_str());
        return 1;
    }
    // Memory bandwidth and core clocks on this (shared, virtualised) machine
    // drift by 2x from second to second, so each matmul run is paired with
    // its own floor measured right before it: a streaming read of the very
    // same weight bytes (n <= 16) or the vdpbf16ps loop for the same number
    // of flops (n = 512). "eff" is the median over the pairs of floor time /
    // matmul time; "ms" and the rates are the best matmul run.
    // "of fp32" relates the rate to the fp32 FMA peak above: small-n runs
    // keep activations in f32, so past a few tokens they are FMA bound here.
    std::printf("%-24s %5s %9s %8s %9s %9s %6s %8s\n", "y = x W^T, W bf16 (m,k)", "n", "ms", "GB/s", "GFLOP/s",
                "floor ms", "eff", "of fp32");
    // Reading 96 MiB of other data before each timed run pushes the weight
    // out of the 32 MiB L3, so both the floor and the matmul come from DRAM.
    const size_t evict_bytes = size_t(96) << 20;
    char *evict_buf = static_cast<char *>(std::aligned_alloc(64, evict_bytes));
    if (!evict_buf) return 1;
    std::memset(evict_buf, 2, evict_bytes);
    auto evict = [&] {
        const size_t eper = evict_bytes / size_t(nt);
        pool.for_each(nt, [&](int64_t c, int) { sink = sink + bench_stream_read_avx512(evict_buf + size_t(c) * eper, eper); });
    };
    const int64_t shapes[][2] = {{14336, 4096}, {4096, 14336}};
    for (auto &s : shapes) {
        const int64_t m = s[0], k = s[1];
        uint16_t *w = static_cast<uint16_t *>(std::aligned_alloc(64, size_t(m) * size_t(k) * 2));
        if (!w) return 1;
        uint64_t st = 12345;
        for (size_t i = 0; i < size_t(m) * size_t(k); i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            w[i] = f32_to_bf16(float(int32_t(st >> 32)) / 2147483648.0f * 0.05f);
        }
        Tensor wt = be->adopt_weight(w, DType::BF16, m, k);
        const size_t wbytes = size_t(m) * size_t(k) * 2;
        const size_t wper = wbytes / size_t(nt) / 256 * 256;
        for (int64_t n : {1, 8, 16, 512}) {
            DeviceBuffer x(*be, DType::F32, n, k), y(*be, DType::F32, n, m);
            for (int64_t i = 0; i < n * k; i++) static_cast<float *>(x.t.data)[i] = float((i * 37) % 101) / 101.0f - 0.5f;
            const double flops = 2.0 * double(n) * double(m) * double(k);
            const bool compute_bound = n > 16;
            // vdpbf16ps iterations per thread for the same flops.
            const int64_t dp_iters = int64_t(flops / (16.0 * 64.0 * nt)) + 1;
            for (int pass = 0; pass < (compute_bound ? 2 : 1); pass++) {
                Backend &b = pass == 0 ? *be : *be_fma;
                b.matmul(x.t, wt, nullptr, y.t);  // warm up
                std::vector<double> ratios;
                double best = 1e30, best_floor = 1e30;
                for (int r = 0; r < (compute_bound ? 5 : 9); r++) {
                    evict();
                    double t0 = now_s();
                    if (compute_bound)
                        pool.for_each(nt, [&](int64_t, int) { sink = sink + bench_dpbf16_loop_avx512(dp_iters); });
                    else
                        pool.for_each(nt, [&](int64_t c, int) {
                            sink = sink + bench_stream_read_avx512(reinterpret_cast<const char *>(w) + size_t(c) * wper, wper);
                        });
                    double t_floor = (now_s() - t0) * double(compute_bound ? 1.0 : double(wbytes) / double(wper * size_t(nt)));
                    evict();
                    t0 = now_s();
                    b.matmul(x.t, wt, nullptr, y.t);
                    double t = now_s() - t0;
                    ratios.push_back(t_floor / t);
                    best = std::min(best, t);
                    best_floor = std::min(best_floor, t_floor);
                }
                std::sort(ratios.begin(), ratios.end());
                char label[64];
                std::snprintf(label, sizeof label, "(%lld,%lld)%s", (long long)m, (long long)k,
                              pass == 1 ? " fp32-FMA" : "");
                std::printf("%-24s %5lld %9.3f %8.1f %9.1f %9.3f %5.0f%% %7.0f%%\n", label, (long long)n, best * 1e3,
                            double(wbytes) / best / 1e9, flops / best / 1e9, best_floor * 1e3,
                            100.0 * ratios[ratios.size() / 2], 100.0 * flops / best / fma_peak);
            }
        }
        std::free(w);
    }
    std::free(evict_buf);

    // ---- attention (f32 FMA; flops = 4 n_q n_kv_visible head_dim n_head) ----
    std::printf("\n%-34s %9s %9s %6s\n", "attention", "ms", "GFLOP/s", "of FMA peak");
    struct AttnCase { const char *name; int64_t n; int heads, kv_heads; bool causal; };
    const AttnCase cases[] = {{"vision n=4096 12 heads, 1 image", 4096, 12, 12, false},
                              {"text prefill n=512 32/2 heads", 512, 32, 2, true}};
    for (const AttnCase &c : cases) {
        const int hd = 128;
        DeviceBuffer q(*be, DType::F32, c.n, int64_t(c.heads) * hd), kv(*be, DType::F32, c.n, int64_t(2 * c.kv_heads) * hd);
        DeviceBuffer o(*be, DType::F32, c.n, int64_t(c.heads) * hd);
        for (int64_t i = 0; i < q.t.numel(); i++) static_cast<float *>(q.t.data)[i] = float(i % 13) * 0.01f;
        for (int64_t i = 0; i < kv.t.numel(); i++) static_cast<float *>(kv.t.data)[i] = float(i % 7) * 0.01f;
        Tensor k = kv.t.col_slice(0, int64_t(c.kv_heads) * hd), v = kv.t.col_slice(int64_t(c.kv_heads) * hd, int64_t(c.kv_heads) * hd);
        AttentionParams p;
        p.n_head = c.heads;
        p.n_kv_head = c.kv_heads;
        p.head_dim = hd;
        p.scale = 0.088f;
        p.causal = c.causal;
        double t = best_of(3, [&] { be->attention(q.t, k, v, p, o.t); });
        double pairs = c.causal ? double(c.n) * double(c.n + 1) / 2 : double(c.n) * double(c.n);
        double flops = 4.0 * pairs * hd * c.heads;
        std::printf("%-34s %9.3f %9.1f %5.0f%%\n", c.name, t * 1e3, flops / t / 1e9, 100.0 * flops / t / fma_peak);
    }
    return sink == 12345.0f ? 2 : 0;
}
