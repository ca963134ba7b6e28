// Runs alt-text jobs on N worker threads (one libcurl handle and one VlmClient each), skipping
// jobs already in the checkpoint and recording each finished one there before moving on.
// Stops handing out work after an auth failure or an unreachable service.
// Leaves out: what a job's result is applied to (files_mode.cpp, wordpress_mode.cpp).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "http_client.h"
#include "vlm_client.h"

namespace vlm::bulk {

struct Job {
    std::string key;  // stable across runs: identifies the image occurrence
    // Loads the image bytes (a local file, or an HTTP download with the thread's client).
    std::function<bool(HttpClient& http, std::string& bytes, std::string& err)> load_image;
    std::string title;
    std::string context;
};

enum class JobState { generated, resumed, failed, not_attempted };

struct JobOutcome {
    JobState state = JobState::not_attempted;
    std::string alt;
    std::string error;
};

struct RunSummary {
    std::vector<JobOutcome> outcomes;   // same order as the jobs
    bool fatal = false;                 // auth failure or service unreachable
    std::string fatal_reason;
    size_t requests = 0;
};

RunSummary run_jobs(const std::vector<Job>& jobs, const VlmSettings& settings, Checkpoint& checkpoint,
                    int concurrency, size_t progress_every, bool quiet);

}  // namespace vlm::bulk
