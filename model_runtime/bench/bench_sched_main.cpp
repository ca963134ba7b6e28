// bench-sched: what one heavy client costs everyone else on vlmd. A small
// client sends short text requests one after another and records each one's
// latency while, in turn,
//   images  a heavy client keeps 4 requests with a large image in flight
//           (a W x H PNG, a different one each time so the vision cache
//           cannot help: decoding and resizing it is the cost), and
//   flood   a heavy client submits 60 requests at once (under the default
//           interactive queue limit of 64, so none is refused).
// Each scenario runs twice on the real vlmd: with the scheduling of before
// issue 12 (image_workers 0: the engine thread decodes images; fair_admission
// off: first come, first served) and with the defaults, so both figures come
// from one run on one machine. Prints one JSON object; not a test.
//   bench-sched --model DIR [--vlmd PATH] [--threads N] [--image WxH] [--small N]
#include "bench/synthetic_image.h"
#include "bench/vlmd_process.h"
#include "ipc/vlm_ipc_client.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using vlm::bench::now_ms;

[[noreturn]] void die(const std::string &m) { vlm::bench::die("bench-sched", m); }

constexpr uint64_t kHeavyClient = 0x1001, kSmallClient = 0x2001;

double percentile(std::vector<double> v, double p)
{
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5))];
}

// Writes `body` (and an image, when given) into the arena and submits it.
void submit(vlm_ipc_client *c, uint64_t client, const std::string &text, int max_tokens,
            const std::vector<uint8_t> *image)
{
    std::vector<uint64_t> regions;
    std::string content = "\"" + text + "\"", images;
    if (image) {
        uint64_t off;
        void *p = vlm_ipc_alloc(c, image->size(), &off);
        if (!p) die("request arena too small for the image");
        std::memcpy(p, image->data(), image->size());
        regions.push_back(off);
        content = "[{\"type\":\"image\",\"image\":0},{\"type\":\"text\",\"text\":\"" + text + "\"}]";
        images = ",\"images\":[{\"offset\":" + std::to_string(off) + ",\"length\":" +
                 std::to_string(image->size()) + "}]";
    }
    const std::string body = "{\"task\":\"chat\",\"messages\":[{\"role\":\"user\",\"content\":" + content +
                             "}]" + images + ",\"max_tokens\":" + std::to_string(max_tokens) +
                             ",\"temperature\":0,\"ignore_eos\":true}";
    uint64_t off;
    void *p = vlm_ipc_alloc(c, body.size(), &off);
    if (!p) die("request arena full");
    std::memcpy(p, body.data(), body.size());
    regions.insert(regions.begin(), off);
    int rc;
    while ((rc = vlm_ipc_submit(c, off, body.size(), 0, client, regions.data(), regions.size(), nullptr,
                                nullptr, nullptr)) == VLM_IPC_AGAIN)
        vlm_ipc_client_wait(c, 10);
    if (rc != VLM_IPC_OK) die("submit failed");
}

// Waits for `n` final events on `c`; counts errors.
void wait_final(vlm_ipc_client *c, int n, int &errors)
{
    vlm_ipc_event ev;
    while (n > 0) {
        while (n > 0 && vlm_ipc_next_event(c, &ev)) {
            if (ev.kind == VLM_IPC_RES_DONE) --n;
            if (ev.kind == VLM_IPC_RES_ERROR) --n, ++errors;
        }
        if (n > 0 && vlm_ipc_client_wait(c, 1000) == VLM_IPC_CLOSED) die("vlmd went away");
    }
}

struct Result {
    std::vector<double> small_ms;
    int                 heavy_done = 0, errors = 0;
};

// The small client's latencies while the heavy client does `scenario`.
Result run_scenario(const std::string &socket, const std::string &scenario,
                    const std::vector<std::vector<uint8_t>> &images, int n_small)
{
    Result r;
    std::atomic<bool> stop{false};
    std::atomic<int> heavy_done{0}, heavy_errors{0};
    std::thread heavy([&] {
        vlm_ipc_client *c = vlm::bench::connect_ready(socket);
        if (!c) die("heavy client cannot connect");
        int errors = 0;
        if (scenario == "flood") {
            for (int i = 0; i < 60; ++i) submit(c, kHeavyClient, "flood " + std::to_string(i), 32, nullptr);
            wait_final(c, 60, errors);
            heavy_done += 60;
        } else {
            int in_flight = 0;
            for (int i = 0; !stop || in_flight > 0;) {
                while (!stop && in_flight < 4) {
                    submit(c, kHeavyClient, "picture " + std::to_string(i), 4, &images[size_t(i) % images.size()]);
                    ++i;
                    ++in_flight;
                }
                wait_final(c, 1, errors);
                --in_flight;
                ++heavy_done;
            }
        }
        heavy_errors += errors;
        vlm_ipc_client_free(c);
    });
    // Let the heavy client's load build up, then measure.
    const double settle = now_ms() + 300;
    while (now_ms() < settle) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    vlm_ipc_client *c = vlm::bench::connect_ready(socket);
    if (!c) die("small client cannot connect");
    for (int i = 0; i < n_small; ++i) {
        const double t = now_ms();
        submit(c, kSmallClient, "small question " + std::to_string(i) + " from " + scenario, 4, nullptr);
        wait_final(c, 1, r.errors);
        r.small_ms.push_back(now_ms() - t);
    }
    stop = true;
    vlm_ipc_client_free(c);
    heavy.join();
    r.heavy_done = heavy_done;
    r.errors += heavy_errors;
    return r;
}

}  // namespace

int main(int argc, char **argv)
{
    std::string model_dir, vlmd_path, threads = "2";
    int width = 4000, height = 4000, n_small = 20;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) die(a + " needs a value");
            return argv[++i];
        };
        if (a == "--model") model_dir = value();
        else if (a == "--vlmd") vlmd_path = value();
        else if (a == "--threads") threads = value();
        else if (a == "--image") {
            if (std::sscanf(value().c_str(), "%dx%d", &width, &height) != 2 || width < 1 || height < 1)
                die("--image wants WxH");
        } else if (a == "--small") n_small = std::max(1, std::atoi(value().c_str()));
        else die("usage: bench-sched --model DIR [--vlmd PATH] [--threads N] [--image WxH] [--small N]");
    }
    if (model_dir.empty()) die("--model DIR is required");
    if (vlmd_path.empty()) {
        const std::string self = argv[0];
        vlmd_path = (self.find('/') == std::string::npos ? std::string(".") : self.substr(0, self.rfind('/'))) + "/vlmd";
    }
    // 251 distinct images: more than a run sends, so none is a cache hit.
    std::vector<std::vector<uint8_t>> images;
    const std::vector<uint8_t> base = vlm::synthetic_grey_png(uint32_t(width), uint32_t(height));
    if (base.empty()) die("could not make the test image");
    for (int v = 0; v < 251; ++v) images.push_back(vlm::with_text_chunk(base, "variant " + std::to_string(v)));

    std::string out = "{\"image\":\"" + std::to_string(width) + "x" + std::to_string(height) + "\"";
    const struct {
        const char *name;
        std::vector<std::string> args;
    } modes[] = {
        {"before", {"--image-workers", "0", "--fair-admission", "off"}},
        {"after", {}},
    };
    for (const auto &mode : modes) {
        std::vector<std::string> args{"--threads", threads, "--request-arena-bytes", "256M"};
        args.insert(args.end(), mode.args.begin(), mode.args.end());
        vlm::bench::VlmdProcess vlmd = vlm::bench::start_vlmd("bench-sched", vlmd_path, model_dir, args);
        for (const char *scenario : {"images", "flood"}) {
            Result r = run_scenario(vlmd.socket, scenario, images, n_small);
            char buf[256];
            std::snprintf(buf, sizeof buf,
                          ",\"%s_%s\":{\"small_ms_p50\":%.1f,\"small_ms_p99\":%.1f,\"small_ms_max\":%.1f,"
                          "\"heavy_done\":%d,\"errors\":%d}",
                          mode.name, scenario, percentile(r.small_ms, 0.5), percentile(r.small_ms, 0.99),
                          percentile(r.small_ms, 1.0), r.heavy_done, r.errors);
            out += buf;
        }
        vlm::bench::stop_vlmd(vlmd);
    }
    std::printf("%s}\n", out.c_str());
    return 0;
}
