// Progress bar / plain progress lines; ETA from the mean time per finished item.
// Leaves out: per-thread rates and smoothing.
#include "progress.h"

#include <cstdio>
#include <unistd.h>

namespace vlm::bulk {

Progress::Progress(size_t total, size_t plain_every, bool quiet)
    : total_(total), plain_every_(plain_every ? plain_every : 10), quiet_(quiet),
      tty_(isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()) {}

void Progress::advance(bool failed) {
    std::lock_guard<std::mutex> lock(mu_);
    ++done_;
    if (failed) ++failed_;
    if (quiet_) return;
    if (tty_ || done_ % plain_every_ == 0 || done_ == total_) draw_locked(false);
}

void Progress::finish() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!quiet_ && tty_ && total_ > 0) std::fputc('\n', stderr);
}

void Progress::draw_locked(bool) {
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    double eta = done_ ? elapsed / static_cast<double>(done_) * static_cast<double>(total_ - done_) : 0;
    long eta_s = static_cast<long>(eta + 0.5);
    unsigned pct = total_ ? static_cast<unsigned>(done_ * 100 / total_) : 100;
    if (tty_) {
        char bar[31];
        size_t filled = total_ ? done_ * 30 / total_ : 30;
        for (size_t i = 0; i < 30; ++i) bar[i] = i < filled ? '#' : '.';
        bar[30] = '\0';
        std::fprintf(stderr, "\r[%s] %zu/%zu %3u%% failed %zu ETA %ld:%02ld ", bar, done_, total_, pct, failed_,
                     eta_s / 60, eta_s % 60);
    } else {
        std::fprintf(stderr, "vlm-bulk: %zu/%zu images (%u%%), %zu failed, ETA %lds\n", done_, total_, pct,
                     failed_, eta_s);
    }
    std::fflush(stderr);
}

}  // namespace vlm::bulk
