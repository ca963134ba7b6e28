// bench-quant: the product y = x W^T with W 4096 x 14336 (the MLP down
// projection) held as bf16, Q8 and Q4, at n = 1, 8 and 512 tokens, on the
// cpu backend's best path and all threads (or argv[1]). Each weight's byte
// floor is its bytes (quants + scales) over the read bandwidth measured by
// streaming a buffer of the same size just before; "eff" = floor / time,
// the median over 5 pairs (this machine kind's bandwidth drifts between
// runs, so a pair's floor and product share conditions). Runs on any x86-64
// (bench-ops needs AVX-512). Prints `BENCH quant fmt=.. n=.. ms=.. eff=..`.
#include "backend/backend_cpu.h"
#include "core/backend.h"
#include "core/cpu_ops_ref.h"
#include "core/quant.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace vlm;

namespace {

double now_s()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Reads `bytes` of `buf` on `threads` threads (8-byte words, 4 lanes, so
// the compiler vectorizes it); returns seconds.
double stream_read(const uint8_t *buf, size_t bytes, int threads)
{
    std::vector<std::thread> ts;
    std::vector<uint64_t> sinks(size_t(threads) * 8);
    const size_t per = bytes / size_t(threads) / 64 * 64;
    const double t0 = now_s();
    for (int i = 0; i < threads; i++)
        ts.emplace_back([&, i] {
            const uint64_t *p = reinterpret_cast<const uint64_t *>(buf + size_t(i) * per);
            uint64_t a = 0, b = 0, c = 0, d = 0;
            for (size_t w = 0; w < per / 8; w += 4) {
                a += p[w];
                b += p[w + 1];
                c += p[w + 2];
                d += p[w + 3];
            }
            sinks[size_t(i) * 8] = a + b + c + d;
        });
    for (auto &t : ts) t.join();
    const double t = now_s() - t0;
    volatile uint64_t keep = sinks[0];
    (void)keep;
    return t;
}

}  // namespace

int main(int argc, char **argv)
{
    int threads = argc > 1 ? std::atoi(argv[1]) : 0;
    if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
    BackendOptions opt;
    opt.n_threads = threads;
    std::string err;
    auto be = make_cpu_backend(opt, err);
    if (!be) {
        std::fprintf(stderr, "bench-quant: %s\n", err.c_str());
        return 1;
    }
    const int64_t m = 4096, k = 14336;
    std::printf("bench-quant: W %lldx%lld, %d threads, cpu path %s\n", (long long)m, (long long)k, threads,
                cpu_isa_name(cpu_best_isa()));
    std::vector<uint16_t> wb(size_t(m * k));
    uint64_t s = 1;
    for (auto &v : wb) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        v = f32_to_bf16(float(int32_t(s >> 32)) / 2147483648.0f * 0.02f);
    }
    // Evicts the caches between runs: 64 MiB, twice the largest L3 here.
    std::vector<uint8_t> evict(size_t(64) << 20, 1);
    std::printf("%-5s %5s %10s %10s %10s %6s\n", "fmt", "n", "ms", "GB/s", "floor ms", "eff");
    double bf16_ms[3] = {0, 0, 0};
    for (DType dt : {DType::BF16, DType::Q8, DType::Q4}) {
        std::vector<uint8_t> qbuf;
        Tensor w;
        w.dtype = dt;
        w.rows = m;
        w.cols = k;
        size_t wbytes;
        if (dt == DType::BF16) {
            w.data = wb.data();
            w.stride = k;
            wbytes = wb.size() * 2;
        } else {
            wbytes = quant_tensor_bytes(dt, m, k);
            qbuf.assign(wbytes, 0);
            w.data = qbuf.data();
            quant_set_layout(w);
            std::vector<std::thread> ts;
            for (int i = 0; i < threads; i++)
                ts.emplace_back([&, i] { quantize_rows(wb.data(), DType::BF16, k, w, m * i / threads, m * (i + 1) / threads); });
            for (auto &t : ts) t.join();
        }
        int ni = 0;
        for (int64_t n : {1, 8, 512}) {
            std::vector<float> x(size_t(n * k)), y(size_t(n * m));
            for (auto &v : x) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                v = float(int32_t(s >> 32)) / 2147483648.0f;
            }
            Tensor xt{x.data(), DType::F32, n, k, k}, yt{y.data(), DType::F32, n, m, m};
            be->matmul(xt, w, nullptr, yt);  // warm-up (scratch, pages)
            std::vector<double> ratios;
            double best = 1e30, best_floor = 1e30;
            const int reps = n == 512 ? 3 : 5;
            for (int r = 0; r < reps; r++) {
                stream_read(evict.data(), evict.size(), threads);
                const double t_floor = stream_read(static_cast<const uint8_t *>(w.data), wbytes, threads);
                stream_read(evict.data(), evict.size(), threads);
                const double t0 = now_s();
                be->matmul(xt, w, nullptr, yt);
                const double t = now_s() - t0;
                ratios.push_back(t_floor / t);
                best = std::min(best, t);
                best_floor = std::min(best_floor, t_floor);
            }
            if (be->failed()) {
                std::fprintf(stderr, "bench-quant: %s\n", be->fault_message().c_str());
                return 1;
            }
            std::sort(ratios.begin(), ratios.end());
            const double eff = ratios[ratios.size() / 2];
            if (dt == DType::BF16) bf16_ms[ni] = best * 1e3;
            std::printf("%-5s %5lld %10.3f %10.1f %10.3f %5.0f%%", dtype_name(dt), (long long)n, best * 1e3,
                        double(wbytes) / best / 1e9, best_floor * 1e3, 100.0 * eff);
            if (dt != DType::BF16) std::printf("  %.2fx bf16", bf16_ms[ni] / (best * 1e3));
            std::printf("\n");
            std::printf("BENCH quant fmt=%s n=%lld ms=%.3f eff=%.3f\n", dtype_name(dt), (long long)n, best * 1e3, eff);
            ni++;
        }
    }
    return 0;
}
