// engine_bench_main.cpp: `engine-bench`, aggregate decode throughput of the
// serving engine at several concurrencies on one model directory (e.g. the
// real-shape model from `mkmodel`). Each run submits N distinct text
// requests at once (greedy, ignore_eos, fixed length) and reports decode
// tokens/s summed over all requests, measured from the last first-token to
// the last token, and the ratio to concurrency 1. Leaves out: images, HTTP.
#include "core/backend.h"
#include "serve/engine.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "backend/registry.h"

#include <chrono>
#include <ctime>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

using Clock = std::chrono::steady_clock;

namespace {

// CPU seconds used by this process so far (all threads).
double process_cpu_s() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

struct RunStats {
    double decode_tps = 0;
    double tokens_per_cpu_s = 0;   // robust to other processes sharing the cores
    double ttft_ms_avg = 0;
};

bool run_once(vlm::Model &model, const vlm::Tokenizer &tok, int concurrency, int max_tokens,
              RunStats &out, std::string &err) {
    vlm::EngineOptions opt;
    opt.max_batch = concurrency;
    opt.kv_cache_bytes = size_t(512) << 20;
    auto engine = vlm::start_engine(model, tok, opt, err);
    if (!engine) return false;
    std::mutex m;
    std::condition_variable cv;
    std::map<uint64_t, int> tokens;
    std::map<uint64_t, Clock::time_point> first, last;
    std::vector<Clock::time_point> token_times;
    std::map<uint64_t, double> first_cpu;
    double last_cpu = 0;
    int done = 0;
    const auto t0 = Clock::now();
    for (int i = 0; i < concurrency; ++i) {
        vlm::EngineRequest r;
        r.id = uint64_t(i + 1);
        vlm::ChatMessage u;
        u.role = "user";
        u.parts.push_back({vlm::ChatPart::TEXT, "Write alt text number " + std::to_string(i) +
                                                    " for a photo of a harbour at dawn.", -1});
        r.chat.messages.push_back(u);
        r.chat.max_tokens = max_tokens;
        r.chat.ignore_eos = true;
        vlm::SubmitResult sr = engine->submit(std::move(r), [&](const vlm::EngineEvent &ev) {
            std::lock_guard<std::mutex> lock(m);
            auto now = Clock::now();
            if (ev.kind == vlm::EngineEvent::DELTA && !ev.tokens.empty()) {
                const double cpu = process_cpu_s();
                if (tokens[ev.request_id]++ == 0) {
                    first[ev.request_id] = now;
                    first_cpu[ev.request_id] = cpu;
                }
                last_cpu = cpu;
                last[ev.request_id] = now;
                token_times.push_back(now);
            } else if (ev.kind != vlm::EngineEvent::DELTA) {
                ++done;
                cv.notify_all();
            }
        });
        if (sr.status != vlm::SubmitStatus::ACCEPTED) {
            err = "request not accepted";
            return false;
        }
    }
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return done == concurrency; });
    Clock::time_point start = t0, end = t0;
    double ttft = 0, start_cpu = 0;
    for (auto &[id, n] : tokens) {
        start_cpu = std::max(start_cpu, first_cpu[id]);
        start = std::max(start, first[id]);
        end = std::max(end, last[id]);
        ttft += std::chrono::duration<double, std::milli>(first[id] - t0).count();
    }
    // Only the window in which every sequence is decoding (after the last
    // first token), and the tokens made in it.
    long decode_tokens = 0;
    for (const auto &t : token_times) decode_tokens += t > start;
    const double secs = std::chrono::duration<double>(end - start).count();
    out.decode_tps = secs > 0 ? double(decode_tokens) / secs : 0;
    out.tokens_per_cpu_s = last_cpu > start_cpu ? double(decode_tokens) / (last_cpu - start_cpu) : 0;
    out.ttft_ms_avg = ttft / double(concurrency);
    return true;
}

}  // namespace

int main(int argc, char **argv) {
    std::string dir, tokenizer;
    int max_tokens = 48, threads = 0;
    std::vector<int> levels = {1, 4, 16};
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--model" && i + 1 < argc) dir = argv[++i];
        else if (a == "--tokenizer" && i + 1 < argc) tokenizer = argv[++i];
        else if (a == "--tokens" && i + 1 < argc) max_tokens = std::atoi(argv[++i]);
        else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
        else {
            std::fprintf(stderr, "usage: engine-bench --model DIR [--tokenizer FILE] [--tokens N] [--threads N]\n");
            return 2;
        }
    }
    if (dir.empty() || max_tokens < 2) {
        std::fprintf(stderr, "usage: engine-bench --model DIR [--tokenizer FILE] [--tokens N] [--threads N]\n");
        return 2;
    }
    std::string err;
    vlm::BackendOptions bo;
    bo.n_threads = threads;
    auto backend = vlm::make_backend("cpu", bo, err);
    std::unique_ptr<vlm::Model> model;
    if (!backend || !vlm::load_model(dir, *backend, model, err)) {
        std::fprintf(stderr, "engine-bench: %s\n", err.c_str());
        return 1;
    }
    // mkmodel's random models have no tokenizer: any GLM tokenizer.json with
    // ids inside the model's vocabulary will do (--tokenizer).
    auto tok = vlm::Tokenizer::load(tokenizer.empty() ? dir + "/tokenizer.json" : tokenizer, err);
    if (!tok) {
        std::fprintf(stderr, "engine-bench: %s\n", err.c_str());
        return 1;
    }
    double base = 0, base_cpu = 0;
    for (int c : levels) {
        RunStats st;
        if (!run_once(*model, *tok, c, max_tokens, st, err)) {
            std::fprintf(stderr, "engine-bench: %s\n", err.c_str());
            return 1;
        }
        if (c == levels.front()) {
            base = st.decode_tps;
            base_cpu = st.tokens_per_cpu_s;
        }
        std::printf("concurrency %2d: aggregate decode %8.1f tokens/s (x%.2f of concurrency 1), "
                    "%7.2f tokens per CPU-second (x%.2f), ttft avg %.0f ms\n", c, st.decode_tps,
                    base > 0 ? st.decode_tps / base : 0.0, st.tokens_per_cpu_s,
                    base_cpu > 0 ? st.tokens_per_cpu_s / base_cpu : 0.0, st.ttft_ms_avg);
        std::fflush(stdout);
    }
    return 0;
}
