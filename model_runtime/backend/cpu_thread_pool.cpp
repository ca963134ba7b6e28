// cpu_thread_pool.cpp: see cpu_thread_pool.h.
#include "backend/cpu_thread_pool.h"

#include <unistd.h>

namespace vlm {

// About 30 us of spinning (pause is ~60 cycles on Zen): long enough to catch
// the next op of a layer, short enough not to steal a core from other
// processes when idle.
static constexpr int kSpinIterations = 2000;

static inline void cpu_relax()
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

CpuThreadPool::CpuThreadPool(int n_threads)
{
    if (n_threads <= 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = online > 0 ? int(online) : 1;
    }
    n_threads_ = n_threads;
    workers_.reserve(size_t(n_threads - 1));
    for (int t = 1; t < n_threads; t++) workers_.emplace_back([this, t] { worker_loop(t); });
}

CpuThreadPool::~CpuThreadPool()
{
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (auto &w : workers_) w.join();
}

void CpuThreadPool::work_on_chunks(int thread)
{
    for (;;) {
        int64_t chunk = next_chunk_.fetch_add(1, std::memory_order_relaxed);
        if (chunk >= n_chunks_) break;
        fn_(ctx_, chunk, thread);
    }
}

void CpuThreadPool::worker_loop(int thread)
{
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = generation_.load(std::memory_order_acquire);
        for (int i = 0; g == seen && i < kSpinIterations; i++) {
            cpu_relax();
            g = generation_.load(std::memory_order_acquire);
        }
        while (g == seen) {
            generation_.wait(seen, std::memory_order_acquire);
            g = generation_.load(std::memory_order_acquire);
        }
        seen = g;
        if (stop_.load(std::memory_order_acquire)) return;
        work_on_chunks(thread);
        if (busy_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) busy_workers_.notify_one();
    }
}

void CpuThreadPool::run(int64_t n_chunks, ChunkFn fn, void *ctx)
{
    if (n_chunks <= 0) return;
    if (n_threads_ == 1 || n_chunks == 1) {
        for (int64_t c = 0; c < n_chunks; c++) fn(ctx, c, 0);
        return;
    }
    fn_ = fn;
    ctx_ = ctx;
    n_chunks_ = n_chunks;
    next_chunk_.store(0, std::memory_order_relaxed);
    busy_workers_.store(int(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    work_on_chunks(0);
    int busy = busy_workers_.load(std::memory_order_acquire);
    for (int i = 0; busy != 0 && i < kSpinIterations; i++) {
        cpu_relax();
        busy = busy_workers_.load(std::memory_order_acquire);
    }
    while (busy != 0) {
        busy_workers_.wait(busy, std::memory_order_acquire);
        busy = busy_workers_.load(std::memory_order_acquire);
    }
}

}  // namespace vlm
