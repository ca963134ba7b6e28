// Progress on stderr: a redrawn bar with ETA on a TTY, a plain line every N items otherwise.
// Leaves out: terminal width detection (the bar is a fixed 30 columns).
#pragma once
#include <chrono>
#include <cstddef>
#include <mutex>

namespace vlm::bulk {

class Progress {
public:
    Progress(size_t total, size_t plain_every, bool quiet);
    void advance(bool failed);   // thread-safe
    void finish();

private:
    void draw_locked(bool final_line);
    size_t total_;
    size_t plain_every_;
    bool quiet_;
    bool tty_;
    size_t done_ = 0;
    size_t failed_ = 0;
    std::chrono::steady_clock::time_point start_;
    std::mutex mu_;
};

}  // namespace vlm::bulk
