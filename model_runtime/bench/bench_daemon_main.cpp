// bench-daemon: what vlmd's protocol costs and what batching across clients
// buys. Starts the real vlmd on a temp socket, then measures (1) PING round
// trip (pure protocol), (2) a tiny request's latency through vlmd minus the
// same request run in-process with generate() (protocol + scheduling
// overhead), (3) aggregate decode tokens/s with 1, 4 and 16 concurrent
// clients. Prints one JSON object. Not a test: numbers depend on the machine.
#include "core/backend.h"
#include "generate/generate.h"
#include "ipc/vlm_ipc_client.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "backend/registry.h"
#include "bench/vlmd_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>


namespace {

using vlm::bench::connect_ready;
using vlm::bench::now_ms;

double median(std::vector<double> v)
{
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

[[noreturn]] void die(const std::string &m) { vlm::bench::die("bench-daemon", m); }

// Runs one text request to its final event; returns completion tokens.
int run_request(vlm_ipc_client *c, const std::string &prompt, int max_tokens)
{
    std::string body = "{\"messages\":[{\"role\":\"user\",\"content\":\"" + prompt +
                       "\"}],\"max_tokens\":" + std::to_string(max_tokens) + ",\"ignore_eos\":true}";
    uint64_t off;
    void *p = vlm_ipc_alloc(c, body.size(), &off);
    if (!p) die("arena full");
    std::memcpy(p, body.data(), body.size());
    if (vlm_ipc_submit(c, off, body.size(), 0, 0, &off, 1, nullptr, nullptr, nullptr) != VLM_IPC_OK)
        die("submit failed");
    vlm_ipc_event ev;
    for (;;) {
        while (vlm_ipc_next_event(c, &ev)) {
            if (ev.kind == VLM_IPC_RES_ERROR) die("request failed: " + std::string(ev.text, ev.text_length));
            if (ev.kind == VLM_IPC_RES_DONE) return int(ev.completion_tokens);
        }
        if (vlm_ipc_client_wait(c, 1000) == VLM_IPC_CLOSED) die("vlmd went away");
    }
}

}  // namespace

int main(int argc, char **argv)
{
    std::string model_dir, vlmd_path, threads = "2", weights = "bf16";
    int tokens_per_request = 64;
    double seconds_per_level = 8;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) die(a + " needs a value");
            return argv[++i];
        };
        if (a == "--model") model_dir = value();
        else if (a == "--vlmd") vlmd_path = value();
        else if (a == "--threads") threads = value();
        else if (a == "--max-tokens") tokens_per_request = std::atoi(value().c_str());
        else if (a == "--seconds") seconds_per_level = std::atof(value().c_str());
        else if (a == "--weights") weights = value();
        else die("usage: bench-daemon --model DIR [--vlmd PATH] [--threads N] [--max-tokens N] [--seconds S] "
                 "[--weights bf16|int8|int4]");
    }
    if (model_dir.empty()) die("--model DIR is required");
    if (vlmd_path.empty()) {
        std::string self = argv[0];
        vlmd_path = (self.find('/') == std::string::npos ? std::string(".") : self.substr(0, self.rfind('/'))) + "/vlmd";
    }
    vlm::bench::VlmdProcess vlmd = vlm::bench::start_vlmd("bench-daemon", vlmd_path, model_dir,
                                                             {"--threads", threads, "--weights", weights});
    vlm_ipc_client *c = connect_ready(vlmd.socket);
    if (!c) die("cannot connect to vlmd (see " + vlmd.log + ")");

    // (1) protocol round trip.
    std::vector<double> ping;
    for (int i = 0; i < 2000; i++) {
        double t = now_ms();
        vlm_ipc_ping(c, nullptr, nullptr, nullptr);
        vlm_ipc_event ev;
        while (!vlm_ipc_next_event(c, &ev)) vlm_ipc_client_wait(c, 1000);
        ping.push_back((now_ms() - t) * 1000.0);
    }
    // (2) tiny request through vlmd vs in-process.
    std::vector<double> via;
    for (int i = 0; i < 30; i++) {
        double t = now_ms();
        run_request(c, "Hi " + std::to_string(i), 1);
        via.push_back(now_ms() - t);
    }
    std::vector<double> alone;
    {
        std::string err;
        vlm::BackendOptions bopt;
        bopt.n_threads = std::atoi(threads.c_str());
        auto backend = vlm::make_backend("cpu", bopt, err);
        auto tok = vlm::Tokenizer::load(model_dir + "/tokenizer.json", err);
        std::unique_ptr<vlm::Model> model;
        if (!backend || !tok || !vlm::load_model(model_dir, *backend, model, err)) die(err);
        for (int i = 0; i < 30; i++) {
            vlm::ChatRequest req;
            req.max_tokens = 1;
            req.ignore_eos = true;
            req.messages.push_back({"user", {{vlm::ChatPart::TEXT, "Hi " + std::to_string(i), -1}}});
            vlm::GenerationResult r;
            double t = now_ms();
            if (!vlm::generate(*model, *tok, req, nullptr, r, err)) die(err);
            alone.push_back(now_ms() - t);
        }
    }
    // (3) aggregate tokens/s at 1, 4, 16 clients (distinct prompts: no coalescing).
    std::string levels;
    for (int n : {1, 4, 16}) {
        std::atomic<long> tokens{0};
        std::vector<std::thread> th;
        double t0 = now_ms(), end = t0 + seconds_per_level * 1000.0;
        for (int k = 0; k < n; k++)
            th.emplace_back([&, k] {
                vlm_ipc_client *cc = connect_ready(vlmd.socket);
                if (!cc) die("client connect failed");
                for (int r = 0; now_ms() < end; r++)
                    tokens += run_request(cc, "client " + std::to_string(k) + " run " + std::to_string(r),
                                          tokens_per_request);
                vlm_ipc_client_free(cc);
            });
        for (auto &t : th) t.join();
        double secs = (now_ms() - t0) / 1000.0;
        char buf[128];
        std::snprintf(buf, sizeof buf, "%s\"%d\":%.1f", levels.empty() ? "" : ",", n, double(tokens) / secs);
        levels += buf;
    }
    vlm_ipc_client_free(c);
    const int vlmd_exit = vlm::bench::stop_vlmd(vlmd);
    std::printf("{\"ping_rtt_us_p50\":%.1f,\"tiny_request_ms_via_vlmd_p50\":%.3f,"
                "\"tiny_request_ms_in_process_p50\":%.3f,\"protocol_overhead_ms\":%.3f,"
                "\"tokens_per_s_by_clients\":{%s},\"max_tokens\":%d,\"vlmd_exit\":%d}\n",
                median(ping), median(via), median(alone), median(via) - median(alone), levels.c_str(),
                tokens_per_request, vlmd_exit);
    return vlmd_exit == 0 ? 0 : 1;
}
