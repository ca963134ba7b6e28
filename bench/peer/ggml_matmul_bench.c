// ggml_matmul_bench.c: the peer side of bench-ops' matmul rows, at a chosen
// thread count. Our code, calling ggml's public API only; scripts/bench-peer.sh
// builds it against the ggml vendored in llama-cpp-python's source package
// (downloaded into build/peer/ at bench time, never committed).
//
// Why not test-backend-ops: it runs max(1, hardware_concurrency()/2) threads,
// one thread on a 2-core machine, while vlm's bench-ops uses all of them.
//
// Times y = x W^T for W of 4096 rows x 14336 columns (ggml: ne0 = 14336,
// ne1 = 4096; the MLP down projection, bench-ops' "(4096,14336)" rows) stored
// in bf16, q8_0 and q4_0, x f32 with n = 1, 8, 512 rows, through the CPU
// backend with ggml_backend_cpu_set_n_threads(THREADS): one ggml_mul_mat node
// (ggml converts x to the weight's vec_dot type inside the op, as in a model).
// Each weight is timed in the plain CPU buffer and, where ggml's CPU backend
// offers it for that type on this CPU (q4_0 on AVX2/AVX-512: CPU_REPACK,
// interleaved 8x8 blocks), in the repacked buffer llama.cpp puts model
// weights in by default. Before every timed run 96 MiB of other data are read
// so the weight comes from DRAM, as in bench-ops. Median of --reps runs after
// two warm-up runs.
//
// Output, one line per case:
//   PEER matmul fmt=q4_0 layout=repack n=1 threads=2 ms=... ms_min=... weight_mb=...
//        gbs=... gflops=... [floor_ms=... floor_pct=...] [bf16_peak_pct=...]
// floor_ms = weight bytes / --bandwidth-gbs (the byte floor; 100% = at the
// measured read bandwidth); bf16_peak_pct = GFLOP/s / --bf16-peak-gflops.
#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { M = 4096, K = 14336 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static volatile uint64_t sink;
static uint64_t *evict_buf;
static size_t evict_words;

static void evict_caches(void)
{
    uint64_t s = 0;
    for (size_t i = 0; i < evict_words; i += 8) s += evict_buf[i];
    sink += s;
}

// ggml's info lines ("repack: repack tensor w ...") would interleave with ours.
static void quiet_log(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: ggml-matmul-bench [--threads N (0 = all CPUs)] [--reps N] [--fmt bf16,q8_0,q4_0]\n"
            "                         [--n 1,8,512] [--bandwidth-gbs X] [--bf16-peak-gflops X]\n");
}

static int in_list(const char *list, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, item, n) == 0) return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

// One timed case: weight `wdata` (already in `type`'s layout) placed in a buffer
// of type `buft`, x of n rows.
static int run_case(ggml_backend_t backend, ggml_backend_buffer_type_t buft, const char *layout, enum ggml_type type,
                    const void *wdata, int n, int threads, int reps, double bw_gbs, double bf16_peak)
{
    struct ggml_init_params ip = {.mem_size = 4 * ggml_tensor_overhead() + ggml_graph_overhead(),
                                  .mem_buffer = NULL,
                                  .no_alloc = true};
    struct ggml_context *wctx = ggml_init(ip);
    struct ggml_context *ctx = ggml_init(ip);
    struct ggml_tensor *w = ggml_new_tensor_2d(wctx, type, K, M);
    ggml_set_name(w, "w");
    ggml_backend_buffer_t wbuf = ggml_backend_alloc_ctx_tensors_from_buft(wctx, buft);
    if (!wbuf) {
        fprintf(stderr, "ggml-matmul-bench: cannot allocate %s weight in %s\n", ggml_type_name(type), layout);
        ggml_free(wctx);
        ggml_free(ctx);
        return 1;
    }
    ggml_backend_buffer_set_usage(wbuf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);

    struct ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, K, n);
    struct ggml_tensor *y = ggml_mul_mat(ctx, w, x);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, y);
    ggml_backend_buffer_t abuf = ggml_backend_alloc_ctx_tensors(ctx, backend);
    if (!abuf) {
        fprintf(stderr, "ggml-matmul-bench: cannot allocate activations\n");
        return 1;
    }
    if (!ggml_backend_supports_op(backend, y)) {
        ggml_backend_buffer_free(abuf);
        ggml_backend_buffer_free(wbuf);
        ggml_free(ctx);
        ggml_free(wctx);
        return 2;  // not offered for this type / CPU
    }
    ggml_backend_tensor_set(w, wdata, 0, ggml_nbytes(w));  // the repack buffer repacks here
    float *xd = malloc(sizeof(float) * (size_t)K * (size_t)n);
    for (size_t i = 0; i < (size_t)K * (size_t)n; i++) xd[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    ggml_backend_tensor_set(x, xd, 0, ggml_nbytes(x));
    free(xd);

    for (int i = 0; i < 2; i++) ggml_backend_graph_compute(backend, gf);
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        evict_caches();
        double t0 = now_s();
        if (ggml_backend_graph_compute(backend, gf) != GGML_STATUS_SUCCESS) {
            fprintf(stderr, "ggml-matmul-bench: compute failed\n");
            return 1;
        }
        t[r] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    const double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    const double bytes = (double)ggml_row_size(type, K) * M;
    const double flops = 2.0 * n * (double)M * (double)K;
    printf("PEER matmul fmt=%s layout=%s n=%d threads=%d ms=%.3f ms_min=%.3f weight_mb=%.1f gbs=%.1f gflops=%.1f",
           ggml_type_name(type), layout, n, threads, med * 1e3, t[0] * 1e3, bytes / 1e6, bytes / med / 1e9,
           flops / med / 1e9);
    if (bw_gbs > 0) {
        const double floor_s = bytes / (bw_gbs * 1e9);
        printf(" floor_ms=%.3f floor_pct=%.0f", floor_s * 1e3, 100.0 * floor_s / med);
    }
    if (bf16_peak > 0) printf(" bf16_peak_pct=%.0f", 100.0 * flops / med / 1e9 / bf16_peak);
    printf("\n");
    fflush(stdout);
    free(t);
    ggml_backend_buffer_free(abuf);
    ggml_backend_buffer_free(wbuf);
    ggml_free(ctx);
    ggml_free(wctx);
    return 0;
}

int main(int argc, char **argv)
{
    int threads = 0, reps = 0;
    const char *fmts = "bf16,q8_0,q4_0", *ns = "1,8,512";
    double bw_gbs = 0, bf16_peak = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { usage(); return 2; }
        if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--fmt")) fmts = v;
        else if (!strcmp(a, "--n")) ns = v;
        else if (!strcmp(a, "--bandwidth-gbs")) bw_gbs = atof(v);
        else if (!strcmp(a, "--bf16-peak-gflops")) bf16_peak = atof(v);
        else { usage(); return 2; }
        i++;
    }
    if (threads <= 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    ggml_log_set(quiet_log, NULL);

    ggml_backend_t backend = ggml_backend_cpu_init();
    if (!backend) { fprintf(stderr, "ggml-matmul-bench: no CPU backend\n"); return 1; }
    ggml_backend_cpu_set_n_threads(backend, threads);

    // The CPU device's extra buffer types (CPU_REPACK, ...), as llama.cpp uses for weights.
    ggml_backend_dev_t dev = ggml_backend_get_device(backend);
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
    ggml_backend_buffer_type_t *extra = NULL;
    ggml_backend_dev_get_extra_bufts_t get_extra =
        (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts");
    if (get_extra) extra = get_extra(dev);

    printf("PEER ggml_info threads=%d avx2=%d avx512=%d avx512_bf16=%d avx512_vnni=%d avx_vnni=%d\n", threads,
           ggml_cpu_has_avx2(), ggml_cpu_has_avx512(), ggml_cpu_has_avx512_bf16(), ggml_cpu_has_avx512_vnni(),
           ggml_cpu_has_avx_vnni());

    evict_words = ((size_t)96 << 20) / sizeof(uint64_t);
    evict_buf = malloc(evict_words * sizeof(uint64_t));
    for (size_t i = 0; i < evict_words; i++) evict_buf[i] = i;

    // Random weights in [-0.05, 0.05), as bench-ops.
    float *wf = malloc(sizeof(float) * (size_t)M * K);
    uint64_t st = 12345;
    for (size_t i = 0; i < (size_t)M * K; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        wf[i] = (float)(int32_t)(st >> 32) / 2147483648.0f * 0.05f;
    }
    const enum ggml_type types[] = {GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const enum ggml_type type = types[ti];
        if (!in_list(fmts, ggml_type_name(type))) continue;
        void *wq = malloc(ggml_row_size(type, K) * M);
        if (type == GGML_TYPE_BF16) ggml_fp32_to_bf16_row(wf, wq, (int64_t)M * K);
        else ggml_quantize_chunk(type, wf, wq, 0, M, K, NULL);
        const int nlist[] = {1, 8, 16, 32, 64, 128, 256, 512, 1024};
        for (size_t ni = 0; ni < sizeof nlist / sizeof nlist[0]; ni++) {
            char nb[16];
            snprintf(nb, sizeof nb, "%d", nlist[ni]);
            if (!in_list(ns, nb)) continue;
            const int n = nlist[ni];
            const int r = reps > 0 ? reps : (n >= 128 ? 5 : 11);
            if (run_case(backend, ggml_backend_cpu_buffer_type(), "plain", type, wq, n, threads, r, bw_gbs, bf16_peak) == 1)
                return 1;
            for (ggml_backend_buffer_type_t *b = extra; b && *b; b++) {
                const char *name = ggml_backend_buft_name(*b);
                const char *layout = strstr(name, "REPACK") ? "repack" : name;
                if (run_case(backend, *b, layout, type, wq, n, threads, r, bw_gbs, bf16_peak) == 1) return 1;
            }
        }
        free(wq);
    }
    free(wf);
    free(evict_buf);
    ggml_backend_free(backend);
    return 0;
}
