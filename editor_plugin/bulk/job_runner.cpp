// Worker pool over an atomic job index; checkpoint writes happen under the checkpoint's lock.
// Leaves out: libcurl multi (threads keep each request's retry loop simple; N is small).
#include "job_runner.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include "alt_quality.h"
#include "image_shrink.h"
#include "progress.h"

namespace vlm::bulk {

RunSummary run_jobs(const std::vector<Job>& jobs, const VlmSettings& settings, Checkpoint& checkpoint,
                    int concurrency, size_t progress_every, bool quiet) {
    RunSummary summary;
    summary.outcomes.resize(jobs.size());
    std::vector<size_t> todo;
    for (size_t i = 0; i < jobs.size(); ++i) {
        std::string alt;
        if (checkpoint.lookup(jobs[i].key, alt)) {
            summary.outcomes[i].state = JobState::resumed;
            summary.outcomes[i].alt = alt;
        } else {
            todo.push_back(i);
        }
    }
    if (!quiet && todo.size() != jobs.size())
        std::fprintf(stderr, "vlm-bulk: %zu images already done (from the state file), %zu to go\n",
                     jobs.size() - todo.size(), todo.size());

    Progress progress(todo.size(), progress_every, quiet);
    std::atomic<size_t> next{0};
    std::atomic<bool> stop{false};
    std::atomic<size_t> requests{0};
    std::mutex fatal_mu;

    auto worker = [&](unsigned seed) {
        VlmClient client(settings, seed);
        HttpClient loader;
        for (;;) {
            if (stop.load()) return;
            size_t t = next.fetch_add(1);
            if (t >= todo.size()) return;
            const Job& job = jobs[todo[t]];
            JobOutcome& out = summary.outcomes[todo[t]];
            AltRequest req;
            std::string err;
            if (!job.load_image(loader, req.image, err)) {
                out.state = JobState::failed;
                out.error = err;
                progress.advance(true);
                continue;
            }
            // Within the service's limits: the original bytes; over them: a smaller JPEG copy.
            ShrinkInfo shrink;
            if (!fit_image_for_service(req.image, req.mime, ShrinkLimits{}, shrink, err)) {
                out.state = JobState::failed;
                out.error = err;
                progress.advance(true);
                continue;
            }
            req.title = job.title;
            req.context = job.context;
            AltResult r = client.generate(req);
            requests += static_cast<size_t>(r.attempts);
            if (r.status == AltStatus::ok) {
                std::string alt = clean_generated_alt(r.alt_text);
                if (alt.empty()) {
                    out.state = JobState::failed;
                    out.error = "service returned an empty alt text";
                } else if (!checkpoint.record(job.key, alt, err)) {
                    // Without a durable checkpoint a crash would repeat work: stop cleanly.
                    out.state = JobState::failed;
                    out.error = err;
                    std::lock_guard<std::mutex> lock(fatal_mu);
                    summary.fatal = true;
                    summary.fatal_reason = "state file: " + err;
                    stop = true;
                } else {
                    out.state = JobState::generated;
                    out.alt = alt;
                }
                progress.advance(out.state == JobState::failed);
                continue;
            }
            out.state = JobState::failed;
            out.error = r.error;
            progress.advance(true);
            if (r.status == AltStatus::auth_failed || r.status == AltStatus::unreachable) {
                std::lock_guard<std::mutex> lock(fatal_mu);
                if (!summary.fatal) {
                    summary.fatal = true;
                    summary.fatal_reason = (r.status == AltStatus::auth_failed ? "authentication failed: "
                                                                                : "service unreachable: ")
                                           + r.error;
                }
                stop = true;
            }
        }
    };
    std::vector<std::thread> threads;
    int n = concurrency < 1 ? 1 : concurrency;
    for (int i = 0; i < n; ++i) threads.emplace_back(worker, std::random_device{}() + static_cast<unsigned>(i));
    for (auto& t : threads) t.join();
    progress.finish();
    summary.requests = requests.load();
    return summary;
}

}  // namespace vlm::bulk
