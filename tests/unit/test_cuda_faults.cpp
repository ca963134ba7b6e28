// test_cuda_faults.cpp: a CUDA error fails the batch, not vlmd (STYLE §5,
// "CUDA_CHECK fails the batch"). The emulator's fault injection
// (vlm::emu::inject_fault) makes the Nth kernel launch or copy fail the way
// a GPU does, once (a refused launch) or stickily (an illegal address: the
// context is dead). Checked at the model level (the call returns false with
// the CUDA error, the ops after it are skipped, the next call recovers and
// gives bit-identical results; a dead context fails every later call as
// "device lost") and at the engine level (every request of the failed batch
// gets a 503-class ERROR, a request after it succeeds with the answer it had
// before the fault).
#include "backend_cuda.h"
#include "cuda_compat.h"
#include "generate/prompt_prep.h"
#include "model/model.h"
#include "serve/engine.h"
#include "text/tokenizer.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <check.h>

using namespace vlm;
using vlm::emu::FaultSite;

namespace {

std::string model_dir()
{
    const char *d = std::getenv("VLM_FIXTURES");
    ck_assert_msg(d && *d, "VLM_FIXTURES is not set");
    return std::string(d) + "/models/tiny-flash";
}

struct Loaded {
    std::unique_ptr<Backend> backend;
    std::unique_ptr<Model> model;
};

Loaded load_cuda_emu()
{
    Loaded l;
    std::string err;
    l.backend = make_cuda_backend(true, BackendOptions{}, err);
    ck_assert_msg(l.backend != nullptr, "%s", err.c_str());
    ck_assert_msg(load_model(model_dir(), *l.backend, l.model, err), "%s", err.c_str());
    return l;
}

// One 12-token prefill step of a fresh sequence over a fresh pool.
bool prefill(Model &m, std::vector<float> &logits, std::string &err)
{
    KvPool pool;
    if (!m.new_kv_pool(2, 16, pool, err)) return false;
    std::vector<int32_t> ids, pos, blocks = {0, 1};
    for (int i = 0; i < 12; ++i) ids.push_back(int32_t(3 + 17 * i % 200));
    for (int p = 0; p < 3; ++p)
        for (int i = 0; i < 12; ++i) pos.push_back(i);
    SeqStep st;
    st.ids = ids.data();
    st.positions = pos.data();
    st.n = 12;
    st.blocks = blocks.data();
    st.n_blocks = 2;
    st.want_logits = true;
    return m.forward_batch({st}, pool, logits, err);
}

PixelBatch small_image(const Model &m)
{
    const VisionConfig &vc = m.config().vision;
    const int merge = vc.spatial_merge_size;
    PixelBatch px;
    px.grids = {{1, 2 * merge, 2 * merge}};
    px.n_patch = int64_t(4) * merge * merge;
    px.patch_dim = vc.in_channels * vc.temporal_patch_size * vc.patch_size * vc.patch_size;
    px.values.resize(size_t(px.n_patch) * size_t(px.patch_dim));
    for (size_t i = 0; i < px.values.size(); ++i) px.values[i] = float(int(i % 97) - 48) / 50.0f;
    return px;
}

}  // namespace

START_TEST(a_failed_launch_fails_the_call_and_the_next_call_recovers)
{
    Loaded l = load_cuda_emu();
    std::string err;
    std::vector<float> want, got;
    emu::clear_injected_faults();
    ck_assert_msg(prefill(*l.model, want, err), "%s", err.c_str());
    const long launches = emu::fault_site_calls(FaultSite::kLaunch);

    // The 5th launch of the step is refused: the step fails with the CUDA
    // error, and the launches after it never happen.
    emu::inject_fault(FaultSite::kLaunch, 5, cudaErrorLaunchOutOfResources, false);
    ck_assert(!prefill(*l.model, got, err));
    const long tried = emu::fault_site_calls(FaultSite::kLaunch);
    std::printf("failed prefill: %s\n  (%ld of %ld launches attempted)\n", err.c_str(), tried, launches);
    ck_assert_msg(err.find("forward_batch: ") == 0 && err.find("cudaErrorLaunchOutOfResources") != std::string::npos,
                  "%s", err.c_str());
    ck_assert_int_eq(tried, 5);
    ck_assert(l.backend->fault() == BackendFault::Device);
    ck_assert_int_eq(model_failure_status(*l.model, 400), 503);

    // The next call recovers the backend and gives the same logits, bit for bit.
    ck_assert_msg(prefill(*l.model, got, err), "%s", err.c_str());
    ck_assert(!l.backend->failed());
    ck_assert_int_eq(int64_t(got.size()), int64_t(want.size()));
    ck_assert(got == want);

    // A failed copy in the vision encoder: the same, then the image encodes.
    PixelBatch px = small_image(*l.model);
    std::vector<float> enc_want, enc_got;
    ck_assert_msg(l.model->encode_images(px, enc_want, err), "%s", err.c_str());
    emu::inject_fault(FaultSite::kMemcpy, 1, cudaErrorLaunchFailure, false);
    ck_assert(!l.model->encode_images(px, enc_got, err));
    std::printf("failed encode: %s\n", err.c_str());
    ck_assert_msg(err.find("encode_images: ") == 0 && err.find("cudaErrorLaunchFailure") != std::string::npos,
                  "%s", err.c_str());
    ck_assert_int_eq(model_failure_status(*l.model, 400), 503);
    ck_assert_msg(l.model->encode_images(px, enc_got, err), "%s", err.c_str());
    ck_assert(enc_got == enc_want);
}
END_TEST

START_TEST(a_sticky_error_loses_the_device)
{
    Loaded l = load_cuda_emu();
    std::string err;
    std::vector<float> want, got;
    emu::clear_injected_faults();
    ck_assert_msg(prefill(*l.model, want, err), "%s", err.c_str());

    emu::inject_fault(FaultSite::kLaunch, 3, cudaErrorIllegalAddress, true);
    ck_assert(!prefill(*l.model, got, err));
    std::printf("failed prefill: %s\n", err.c_str());
    ck_assert(err.find("cudaErrorIllegalAddress") != std::string::npos);
    // Every later call fails at once, naming the lost device.
    for (int i = 0; i < 2; ++i) {
        ck_assert(!prefill(*l.model, got, err));
        std::printf("next call: %s\n", err.c_str());
        ck_assert_msg(err.find("device lost") != std::string::npos && err.find("restart") != std::string::npos,
                      "%s", err.c_str());
        ck_assert_int_eq(model_failure_status(*l.model, 400), 503);
    }
    // What a restart gives on a GPU: a live context; the model recovers.
    emu::clear_injected_faults();
    ck_assert_msg(prefill(*l.model, got, err), "%s", err.c_str());
    ck_assert(got == want);
}
END_TEST

namespace {

// Events per request; `on_event` runs on the engine thread (between steps),
// after the event is recorded, under the lock.
struct Events {
    std::mutex m;
    std::condition_variable cv;
    std::map<uint64_t, std::vector<int32_t>> tokens;
    std::map<uint64_t, int> status;  // ERROR status; 0 while none
    std::map<uint64_t, std::string> error, finish;
    std::map<uint64_t, bool> ended;
    std::function<void(const EngineEvent &)> on_event;

    EventSink sink()
    {
        return [this](const EngineEvent &ev) {
            std::lock_guard<std::mutex> lock(m);
            if (ev.kind == EngineEvent::DELTA)
                tokens[ev.request_id].insert(tokens[ev.request_id].end(), ev.tokens.begin(), ev.tokens.end());
            if (ev.kind == EngineEvent::ERROR) {
                status[ev.request_id] = ev.error_status;
                error[ev.request_id] = ev.error;
            }
            if (ev.kind == EngineEvent::DONE) finish[ev.request_id] = ev.finish_reason;
            if (ev.kind != EngineEvent::DELTA) ended[ev.request_id] = true;
            if (on_event) on_event(ev);
            cv.notify_all();
        };
    }
    bool wait_end(uint64_t id)
    {
        std::unique_lock<std::mutex> lock(m);
        return cv.wait_for(lock, std::chrono::minutes(5), [&] { return ended[id]; });
    }
};

ChatRequest text_request(const std::string &text, int max_tokens)
{
    ChatRequest r;
    ChatMessage u;
    u.role = "user";
    u.parts.push_back({ChatPart::TEXT, text, -1});
    r.messages.push_back(u);
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    return r;
}

void submit(Engine &e, uint64_t id, ChatRequest r, Events &ev)
{
    EngineRequest req;
    req.id = id;
    req.chat = std::move(r);
    SubmitResult res = e.submit(std::move(req), ev.sink());
    ck_assert_msg(res.status == SubmitStatus::ACCEPTED, "submit %llu refused", (unsigned long long)id);
}

// Runs the engine scenario: request 1 alone (the reference answer), then
// requests 2 and 3 together; when both decode, the next step's `nth` launch
// fails (sticky or not); then request 4 (= request 1) runs.
void engine_scenario(bool sticky, Events &ev)
{
    Loaded l = load_cuda_emu();
    std::string err;
    auto tok = Tokenizer::load(model_dir() + "/tokenizer.json", err);
    ck_assert_msg(tok != nullptr, "%s", err.c_str());
    EngineOptions opt;
    opt.kv_cache_bytes = size_t(16) << 20;
    auto engine = start_engine(*l.model, *tok, opt, err);
    ck_assert_msg(engine != nullptr, "%s", err.c_str());
    emu::clear_injected_faults();

    submit(*engine, 1, text_request("Describe a lighthouse.", 6), ev);
    ck_assert(ev.wait_end(1));
    ck_assert_str_eq(ev.finish[1].c_str(), "length");

    // Arm from the sink: the engine delivers a step's events after planning
    // the next step, so once both 2 and 3 have a token, the next step holds
    // both of them (decoding, 24 tokens to go) and its 4th launch fails.
    bool armed = false;
    ev.on_event = [&](const EngineEvent &) {
        if (armed || ev.tokens[2].empty() || ev.tokens[3].empty()) return;
        emu::inject_fault(FaultSite::kLaunch, 4, sticky ? cudaErrorIllegalAddress : cudaErrorLaunchFailure, sticky);
        armed = true;
    };
    submit(*engine, 2, text_request("Write about rivers.", 24), ev);
    submit(*engine, 3, text_request("List three colours and a shape.", 24), ev);
    ck_assert(ev.wait_end(2) && ev.wait_end(3));
    ck_assert(armed);
    for (uint64_t id : {2, 3}) {
        std::printf("request %llu: ERROR %d: %s\n", (unsigned long long)id, ev.status[id], ev.error[id].c_str());
        ck_assert_int_eq(ev.status[id], 503);
        ck_assert(ev.error[id].find(sticky ? "cudaErrorIllegalAddress" : "cudaErrorLaunchFailure") !=
                  std::string::npos);
    }
    submit(*engine, 4, text_request("Describe a lighthouse.", 6), ev);
    ck_assert(ev.wait_end(4));
    if (sticky) {
        std::printf("request 4 after a lost device: ERROR %d: %s\n", ev.status[4], ev.error[4].c_str());
        ck_assert_int_eq(ev.status[4], 503);
        ck_assert(ev.error[4].find("device lost") != std::string::npos);
    } else {
        std::printf("request 4 after the failed batch: %s, tokens %s\n", ev.finish[4].c_str(),
                    ev.tokens[4] == ev.tokens[1] ? "identical to request 1" : "DIFFERENT");
        ck_assert_str_eq(ev.finish[4].c_str(), "length");
        ck_assert(ev.tokens[4] == ev.tokens[1]);
    }
    EngineMetrics m = engine->metrics();
    ck_assert_int_eq(int(m.requests_failed), sticky ? 3 : 2);
    engine.reset();
    emu::clear_injected_faults();
}

}  // namespace

START_TEST(the_engine_fails_the_batch_with_503_and_keeps_serving)
{
    Events ev;
    engine_scenario(false, ev);
}
END_TEST

START_TEST(the_engine_reports_a_lost_device_on_every_later_request)
{
    Events ev;
    engine_scenario(true, ev);
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv)
{
    return vlm_check_main(argc, argv, "cuda_faults", {
        {"model", 600, {
            a_failed_launch_fails_the_call_and_the_next_call_recovers,
            a_sticky_error_loses_the_device,
        }},
        {"engine", 600, {
            the_engine_fails_the_batch_with_503_and_keeps_serving,
            the_engine_reports_a_lost_device_on_every_later_request,
        }},
    });
}
