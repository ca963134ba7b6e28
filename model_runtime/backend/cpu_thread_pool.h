// cpu_thread_pool.h: a small persistent pool for the cpu backend's ops. The
// calling thread works too; chunks of an op are handed out from an atomic
// counter so a core slowed by another process does not stall the op. No
// allocation per call; workers spin briefly, then sleep on a futex
// (std::atomic::wait) between ops. Not re-entrant: one op at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace vlm {

class CpuThreadPool {
public:
    // n_threads <= 0: one per online CPU. The caller counts as one thread.
    explicit CpuThreadPool(int n_threads);
    ~CpuThreadPool();
    CpuThreadPool(const CpuThreadPool &) = delete;
    CpuThreadPool &operator=(const CpuThreadPool &) = delete;

    int size() const { return n_threads_; }

    // Calls fn(ctx, chunk, thread) once for every chunk in [0, n_chunks);
    // `thread` is in [0, size()) and unique among concurrent calls (index
    // per-thread scratch with it). Returns when all chunks are done.
    using ChunkFn = void (*)(void *ctx, int64_t chunk, int thread);
    void run(int64_t n_chunks, ChunkFn fn, void *ctx);

    // Same with a callable f(chunk, thread), without type erasure allocation.
    template <class F>
    void for_each(int64_t n_chunks, F &&f)
    {
        using Fn = std::remove_reference_t<F>;
        run(n_chunks, [](void *c, int64_t i, int t) { (*static_cast<Fn *>(c))(i, t); },
            const_cast<void *>(static_cast<const void *>(&f)));
    }

private:
    void worker_loop(int thread);
    void work_on_chunks(int thread);

    int n_threads_ = 1;
    std::vector<std::thread> workers_;
    std::atomic<uint32_t> generation_{0};   // bumped once per run() (32-bit: futex-native)
    std::atomic<int> busy_workers_{0};      // workers not yet done with this run
    std::atomic<int64_t> next_chunk_{0};
    std::atomic<bool> stop_{false};
    int64_t n_chunks_ = 0;
    ChunkFn fn_ = nullptr;
    void *ctx_ = nullptr;
};

}  // namespace vlm
