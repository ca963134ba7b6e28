// The serving engine as vlmd's users see it: greedy answers are token for
// token those of generate() (vlm-run) for every golden case of every fixture
// model, alone and 16 at once; cancelling frees KV blocks at once; INTERACTIVE
// goes before BULK; a full queue answers QUEUE_FULL with a retry hint; prefix
// and vision caches hit on repeats; identical requests coalesce; deadlines end
// requests; bad input is an ERROR event and the engine keeps serving.
#include "serve/engine.h"
#include "core/backend.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "backend/registry.h"
#include "bench/synthetic_image.h"

#include <check.h>
#include <jansson.h>

#include <dirent.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace vlm;
using Clock = std::chrono::steady_clock;

namespace {

std::string fixtures() {
    const char *d = std::getenv("VLM_FIXTURES");
    return d ? d : "";
}

std::vector<std::string> model_names() {
    std::vector<std::string> names;
    DIR *d = opendir((fixtures() + "/models").c_str());
    if (!d) return names;
    while (dirent *e = readdir(d))
        if (e->d_name[0] != '.') names.push_back(e->d_name);
    closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}

struct Loaded {
    std::unique_ptr<Backend>   backend;
    std::unique_ptr<Model>     model;
    std::unique_ptr<Tokenizer> tok;
};

Loaded load(const std::string &name) {
    Loaded l;
    std::string err;
    const std::string dir = fixtures() + "/models/" + name;
    BackendOptions bo;
    bo.n_threads = 2;
    l.backend = make_backend("cpu", bo, err);
    ck_assert_msg(l.backend != nullptr, "backend: %s", err.c_str());
    ck_assert_msg(load_model(dir, *l.backend, l.model, err), "%s: %s", name.c_str(), err.c_str());
    l.tok = Tokenizer::load(dir + "/tokenizer.json", err);
    ck_assert_msg(l.tok != nullptr, "%s: %s", name.c_str(), err.c_str());
    return l;
}

ImageBytes image_file(const std::string &name) {
    std::ifstream f(fixtures() + "/images/" + name, std::ios::binary);
    ck_assert_msg(f.good(), "missing fixture image %s", name.c_str());
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return ImageBytes::copy_of(std::move(bytes));
}

// A request as vlm-run builds it: optional system, then images, then text.
ChatRequest make_request(const std::string &system, const std::string &user,
                         const std::vector<std::string> &images, int max_tokens) {
    ChatRequest r;
    if (!system.empty()) {
        ChatMessage sys;
        sys.role = "system";
        sys.parts.push_back({ChatPart::TEXT, system, -1});
        r.messages.push_back(sys);
    }
    ChatMessage u;
    u.role = "user";
    for (size_t i = 0; i < images.size(); ++i) {
        r.images.push_back(image_file(images[i]));
        u.parts.push_back({ChatPart::IMAGE, "", int(i)});
    }
    u.parts.push_back({ChatPart::TEXT, user, -1});
    r.messages.push_back(u);
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    r.chat.enable_thinking = false;   // vlm-run's default
    return r;
}

std::vector<ChatRequest> golden_requests(const std::string &model) {
    const std::string path = fixtures() + "/models/" + model + "/golden/cases.json";
    json_error_t jerr;
    json_t *root = json_load_file(path.c_str(), 0, &jerr);
    ck_assert_msg(root != nullptr, "%s: %s", path.c_str(), jerr.text);
    json_t *cases = json_object_get(root, "cases");
    ck_assert_msg(json_is_array(cases) && json_array_size(cases) > 0, "%s: no cases", path.c_str());
    std::vector<ChatRequest> out;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        json_t *sys = json_object_get(c, "system");
        json_t *user = json_object_get(c, "user");
        ck_assert_msg(json_is_string(user), "%s: case %zu has no user text", path.c_str(), i);
        std::vector<std::string> images;
        size_t j;
        json_t *im;
        json_array_foreach(json_object_get(c, "images"), j, im) images.push_back(json_string_value(im));
        out.push_back(make_request(json_is_string(sys) ? json_string_value(sys) : "",
                                   json_string_value(user), images, 32));
    }
    json_decref(root);
    return out;
}

// Collects events per request id.
struct Collector {
    std::mutex m;
    std::condition_variable cv;
    std::map<uint64_t, std::vector<int32_t>> tokens;
    std::map<uint64_t, std::string> text, finish;
    std::map<uint64_t, int> error_status;
    std::map<uint64_t, bool> done;
    std::vector<uint64_t> first_token_order, done_order;
    int sleep_ms_per_delta = 0;

    EventSink sink() {
        return [this](const EngineEvent &ev) {
            {
                std::lock_guard<std::mutex> lock(m);
                auto &t = tokens[ev.request_id];
                if (ev.kind == EngineEvent::DELTA) {
                    if (t.empty() && !ev.tokens.empty()) first_token_order.push_back(ev.request_id);
                    t.insert(t.end(), ev.tokens.begin(), ev.tokens.end());
                } else if (ev.kind == EngineEvent::DONE) {
                    done_order.push_back(ev.request_id);
                    text[ev.request_id] = ev.text;
                    finish[ev.request_id] = ev.finish_reason;
                    done[ev.request_id] = true;
                } else {
                    error_status[ev.request_id] = ev.error_status;
                    done[ev.request_id] = true;
                }
            }
            cv.notify_all();
            if (sleep_ms_per_delta) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_per_delta));
        };
    }
    bool wait_done(uint64_t id, int timeout_ms = 20000) {
        std::unique_lock<std::mutex> lock(m);
        return cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return done[id]; });
    }
    bool wait_tokens(uint64_t id, size_t n, int timeout_ms = 20000) {
        std::unique_lock<std::mutex> lock(m);
        return cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                           [&] { return tokens[id].size() >= n || done[id]; });
    }
};

std::vector<int32_t> reference_tokens(Loaded &l, const ChatRequest &r, int chunk) {
    GenerationResult res;
    std::string err;
    ck_assert_msg(generate_chunked(*l.model, *l.tok, r, chunk, nullptr, res, err), "generate: %s",
                  err.c_str());
    return res.tokens;
}

void submit_ok(Engine &e, uint64_t id, const ChatRequest &r, Collector &c,
               Priority p = Priority::INTERACTIVE, int64_t deadline = 0, uint64_t client = 0) {
    EngineRequest er;
    er.id = id;
    er.chat = r;
    er.priority = p;
    er.deadline_ms = deadline;
    er.client = client;
    SubmitResult sr = e.submit(std::move(er), c.sink());
    ck_assert_msg(sr.status == SubmitStatus::ACCEPTED, "request %llu not accepted: %d %s",
                  (unsigned long long)id, int(sr.status), sr.error.c_str());
}

std::unique_ptr<Engine> start(Loaded &l, const EngineOptions &opt) {
    std::string err;
    auto e = start_engine(*l.model, *l.tok, opt, err);
    ck_assert_msg(e != nullptr, "start_engine: %s", err.c_str());
    return e;
}

std::string show(const std::vector<int32_t> &t) {
    std::string s;
    for (int32_t v : t) s += std::to_string(v) + " ";
    return s;
}

// Every case alone, then 16 at once (cases mixed, made distinct by a stop
// string that never matches so none coalesce, submitted in a staggered way).
void check_parity(int chunk) {
    const std::vector<std::string> models = model_names();
    ck_assert_msg(models.size() >= 3, "expected the fixture models, found %zu", models.size());
    for (const std::string &name : models) {
        Loaded l = load(name);
        std::vector<ChatRequest> cases = golden_requests(name);
        std::vector<std::vector<int32_t>> want;
        for (const ChatRequest &r : cases) want.push_back(reference_tokens(l, r, chunk));
        EngineOptions opt;
        opt.prefill_chunk_tokens = chunk;
        opt.kv_cache_bytes = size_t(64) << 20;
        auto engine = start(l, opt);
        Collector c;
        uint64_t id = 1;
        for (size_t i = 0; i < cases.size(); ++i, ++id) {
            submit_ok(*engine, id, cases[i], c);
            ck_assert_msg(c.wait_done(id), "%s case %zu: no DONE", name.c_str(), i);
            ck_assert_msg(c.tokens[id] == want[i], "%s case %zu alone:\n engine   %s\n generate %s",
                          name.c_str(), i, show(c.tokens[id]).c_str(), show(want[i]).c_str());
        }
        std::vector<std::pair<uint64_t, size_t>> batch;
        c.sleep_ms_per_delta = 1;   // keep sequences alive long enough to overlap
        int max_running = 0;
        for (int k = 0; k < 16; ++k, ++id) {
            ChatRequest r = cases[size_t(k) % cases.size()];
            r.stop_strings.push_back("\x01never-" + std::to_string(k));
            submit_ok(*engine, id, r, c);
            batch.emplace_back(id, size_t(k) % cases.size());
            if (k % 5 == 4) c.wait_tokens(id, 3);   // stagger: join a running batch
            max_running = std::max(max_running, engine->metrics().running);
        }
        for (auto &[rid, ci] : batch) {
            max_running = std::max(max_running, engine->metrics().running);
            ck_assert_msg(c.wait_done(rid), "%s: request %llu never finished", name.c_str(),
                          (unsigned long long)rid);
            ck_assert_msg(c.tokens[rid] == want[ci], "%s case %zu in a batch of 16:\n engine   %s\n generate %s",
                          name.c_str(), ci, show(c.tokens[rid]).c_str(), show(want[ci]).c_str());
        }
        EngineMetrics m = engine->metrics();
        std::printf("parity %s chunk %d: %zu cases alone and 16 concurrent identical to generate(); "
                    "up to %d sequences in one batch; prefix hit %llu/%llu tokens, vision cache %llu hits, "
                    "kv used %lld after\n",
                    name.c_str(), chunk, cases.size(), max_running, (unsigned long long)m.prefix_cache_hit_tokens,
                    (unsigned long long)m.prefix_cache_lookup_tokens,
                    (unsigned long long)m.vision_cache_hits, (long long)m.kv_blocks_used);
        ck_assert_int_eq(m.kv_blocks_used, 0);
        ck_assert_msg(max_running >= 8, "%s: at most %d sequences ran together", name.c_str(), max_running);
    }
}

}  // namespace

START_TEST(test_parity_default_chunks) { check_parity(kDefaultPrefillChunk); }
END_TEST

// Small chunks: multi-chunk prefill with image rows split across chunks, and
// prefix reuse resuming mid-prompt, still give generate()'s tokens.
START_TEST(test_parity_small_chunks) { check_parity(16); }
END_TEST

START_TEST(test_cancel_frees_blocks) {
    Loaded l = load("tiny-flash");
    EngineOptions opt;
    opt.kv_cache_bytes = size_t(64) << 20;
    auto engine = start(l, opt);
    Collector c;
    c.sleep_ms_per_delta = 1;   // keep the background request running
    submit_ok(*engine, 1, make_request("", "background", {}, 2000), c);
    ck_assert(c.wait_tokens(1, 2));
    const int64_t baseline = engine->metrics().kv_blocks_used;
    submit_ok(*engine, 2, make_request("", "to be cancelled", {"photo.jpg"}, 1500), c);
    ck_assert(c.wait_tokens(2, 2));
    const int64_t with_two = engine->metrics().kv_blocks_used;
    ck_assert_msg(with_two > baseline, "second request holds no blocks (%lld vs %lld)",
                  (long long)with_two, (long long)baseline);
    engine->cancel(2);
    const uint64_t steps_at_cancel = engine->metrics().steps;
    while (engine->metrics().steps < steps_at_cancel + 1) std::this_thread::sleep_for(std::chrono::microseconds(200));
    const int64_t after = engine->metrics().kv_blocks_used;
    std::printf("cancel: kv_blocks_used %lld -> %lld (baseline %lld) one step after cancel\n",
                (long long)with_two, (long long)after, (long long)baseline);
    ck_assert_int_eq(after, baseline);
    ck_assert(c.wait_done(2));
    ck_assert_str_eq(c.finish[2].c_str(), "cancelled");
    engine->cancel(1);
    ck_assert(c.wait_done(1));
    ck_assert_int_eq(engine->metrics().requests_cancelled, 2);
}
END_TEST

START_TEST(test_interactive_before_bulk) {
    Loaded l = load("tiny-flash");
    EngineOptions opt;
    opt.max_batch = 1;
    opt.kv_cache_bytes = size_t(64) << 20;
    auto engine = start(l, opt);
    Collector c;
    c.sleep_ms_per_delta = 1;
    submit_ok(*engine, 1, make_request("", "first, interactive", {}, 40), c);
    ck_assert(c.wait_tokens(1, 1));
    submit_ok(*engine, 2, make_request("", "bulk", {}, 4), c, Priority::BULK);
    submit_ok(*engine, 3, make_request("", "interactive", {}, 4), c, Priority::INTERACTIVE);
    ck_assert(c.wait_done(2) && c.wait_done(3));
    std::printf("first-token order:");
    for (uint64_t id : c.first_token_order) std::printf(" %llu", (unsigned long long)id);
    std::printf("\n");
    ck_assert_int_eq(c.first_token_order.size(), 3);
    ck_assert_int_eq(c.first_token_order[1], 3);   // interactive before the earlier bulk
    ck_assert_int_eq(c.first_token_order[2], 2);
}
END_TEST

// issue 12: small text requests stalled for seconds while requests with
// large images were decoded on the engine thread. Images are now decoded by
// an image worker, so a text request submitted right after a 36-megapixel
// image finishes before the image request has its first token.
START_TEST(test_large_image_does_not_stall_text) {
    Loaded l = load("tiny-flash");
    EngineOptions opt;
    opt.kv_cache_bytes = size_t(64) << 20;
    opt.image_workers = 1;
    auto engine = start(l, opt);
    Collector c;
    ChatRequest img = make_request("", "Describe the image.", {}, 4);
    img.images.push_back(ImageBytes::copy_of(synthetic_grey_png(6000, 6000)));
    img.messages.back().parts.insert(img.messages.back().parts.begin(), {ChatPart::IMAGE, "", 0});
    const auto t0 = Clock::now();
    submit_ok(*engine, 1, img, c);
    submit_ok(*engine, 2, make_request("", "A short text question.", {}, 8), c);
    ck_assert(c.wait_done(2) && c.wait_done(1, 120000));
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    std::printf("large image + text: first tokens %llu then %llu, done %llu then %llu, %.0f ms\n",
                (unsigned long long)c.first_token_order[0], (unsigned long long)c.first_token_order[1],
                (unsigned long long)c.done_order[0], (unsigned long long)c.done_order[1], ms);
    ck_assert_msg(c.error_status.count(1) == 0, "image request failed: %d", c.error_status[1]);
    ck_assert_int_eq(c.done_order.size(), 2);
    ck_assert_int_eq(c.done_order[0], 2);          // the text answer is complete
    ck_assert_int_eq(c.first_token_order[0], 2);   // before the image request's first token
}
END_TEST

// issue 12: one client's queued requests kept another client's single
// request waiting behind all of them. Within a priority, clients now take
// turns for free batch slots; fair_admission off is first come, first served.
START_TEST(test_clients_take_turns) {
    Loaded l = load("tiny-flash");
    for (bool fair : {true, false}) {
        EngineOptions opt;
        opt.max_batch = 1;
        opt.kv_cache_bytes = size_t(64) << 20;
        opt.fair_admission = fair;
        auto engine = start(l, opt);
        Collector c;
        c.sleep_ms_per_delta = 1;
        const uint64_t a = 11, b = 22;
        submit_ok(*engine, 1, make_request("", "client a, running", {}, 30), c, Priority::INTERACTIVE, 0, a);
        ck_assert(c.wait_tokens(1, 1));
        for (uint64_t id = 2; id <= 4; ++id)
            submit_ok(*engine, id, make_request("", "client a, queued " + std::to_string(id), {}, 3), c,
                      Priority::INTERACTIVE, 0, a);
        submit_ok(*engine, 5, make_request("", "client b", {}, 3), c, Priority::INTERACTIVE, 0, b);
        for (uint64_t id = 1; id <= 5; ++id) ck_assert(c.wait_done(id));
        std::printf("fair_admission %s: first-token order", fair ? "on" : "off");
        for (uint64_t id : c.first_token_order) std::printf(" %llu", (unsigned long long)id);
        std::printf("\n");
        ck_assert_int_eq(c.first_token_order.size(), 5);
        const std::vector<uint64_t> want = fair ? std::vector<uint64_t>{1, 5, 2, 3, 4}
                                                : std::vector<uint64_t>{1, 2, 3, 4, 5};
        ck_assert_msg(c.first_token_order == want, "fair_admission %s: unexpected order", fair ? "on" : "off");
    }
}
END_TEST

START_TEST(test_queue_full) {
    Loaded l = load("tiny-flash");
    EngineOptions opt;
    opt.max_batch = 1;
    opt.queue_limit_interactive = 1;
    opt.queue_limit_bulk = 0;
    opt.kv_cache_bytes = size_t(64) << 20;
    auto engine = start(l, opt);
    Collector c;
    c.sleep_ms_per_delta = 1;
    submit_ok(*engine, 1, make_request("", "running", {}, 500), c);
    ck_assert(c.wait_tokens(1, 5));
    submit_ok(*engine, 2, make_request("", "queued", {}, 5), c);
    EngineRequest er;
    er.id = 3;
    er.chat = make_request("", "one too many", {}, 5);
    SubmitResult sr = engine->submit(er, c.sink());
    std::printf("queue full: status %d retry_after_ms %d (decode %.0f tok/s)\n", int(sr.status),
                sr.retry_after_ms, engine->metrics().decode_tokens_per_s);
    ck_assert(sr.status == SubmitStatus::QUEUE_FULL);
    ck_assert(sr.retry_after_ms > 0);
    er.id = 4;
    er.priority = Priority::BULK;
    ck_assert(engine->submit(er, c.sink()).status == SubmitStatus::QUEUE_FULL);
    ck_assert_int_eq(engine->metrics().queue_interactive, 1);
    engine->cancel(1);
    ck_assert(c.wait_done(2));
    ck_assert_str_eq(c.finish[2].c_str(), "length");
}
END_TEST

START_TEST(test_prefix_and_vision_cache) {
    Loaded l = load("tiny-flash");
    EngineOptions opt;
    opt.prefill_chunk_tokens = 16;
    opt.kv_cache_bytes = size_t(64) << 20;
    auto engine = start(l, opt);
    Collector c;
    const std::string sys = "You write short, precise alt text for images in blog posts.";
    ChatRequest a = make_request(sys, "Describe it.", {"photo.jpg"}, 8);
    ChatRequest b = make_request(sys, "What colour dominates?", {"photo.jpg"}, 8);
    submit_ok(*engine, 1, a, c);
    ck_assert(c.wait_done(1));
    EngineMetrics m1 = engine->metrics();
    submit_ok(*engine, 2, b, c);
    ck_assert(c.wait_done(2));
    EngineMetrics m2 = engine->metrics();
    std::printf("prefix cache: second request reused %llu of %llu prompt tokens; vision cache "
                "hits %llu misses %llu\n",
                (unsigned long long)(m2.prefix_cache_hit_tokens - m1.prefix_cache_hit_tokens),
                (unsigned long long)(m2.prefix_cache_lookup_tokens - m1.prefix_cache_lookup_tokens),
                (unsigned long long)m2.vision_cache_hits, (unsigned long long)m2.vision_cache_misses);
    ck_assert_int_eq(m1.prefix_cache_hit_tokens, 0);
    ck_assert(m2.prefix_cache_hit_tokens >= 16);
    ck_assert_int_eq(m2.vision_cache_hits, 1);
    ck_assert_int_eq(m2.vision_cache_misses, 1);
    // The reused prefix changes nothing in the answer.
    ck_assert_msg(c.tokens[2] == reference_tokens(l, b, 16), "answer after a prefix hit differs");
}
END_TEST

START_TEST(test_coalescing) {
    Loaded l = load("tiny-flash");
    EngineOptions opt;
    opt.max_batch = 1;
    opt.kv_cache_bytes = size_t(64) << 20;
    auto engine = start(l, opt);
    Collector c;
    c.sleep_ms_per_delta = 1;
    ChatRequest r = make_request("", "Same question", {"photo.jpg"}, 24);
    submit_ok(*engine, 1, r, c);
    ck_assert(c.wait_tokens(1, 3));
    submit_ok(*engine, 2, r, c);   // joins the one in flight
    ck_assert(c.wait_done(1) && c.wait_done(2));
    EngineMetrics m = engine->metrics();
    std::printf("coalescing: %llu coalesced, tokens %zu and %zu, prompt tokens %llu (once)\n",
                (unsigned long long)m.requests_coalesced, c.tokens[1].size(), c.tokens[2].size(),
                (unsigned long long)m.prompt_tokens);
    ck_assert_int_eq(m.requests_coalesced, 1);
    ck_assert_int_eq(c.tokens[1].size(), 24);
    ck_assert(c.tokens[1] == c.tokens[2]);
    ck_assert(c.text[1] == c.text[2]);
    // A sampled request without a seed is not deterministic: never coalesced.
    ChatRequest s = r;
    s.sampling.temperature = 0.8f;
    submit_ok(*engine, 3, s, c);
    submit_ok(*engine, 4, s, c);
    ck_assert(c.wait_done(3) && c.wait_done(4));
    ck_assert_int_eq(engine->metrics().requests_coalesced, 1);
}
END_TEST

START_TEST(test_deadline) {
    Loaded l = load("tiny-flash");
    EngineOptions opt;
    opt.kv_cache_bytes = size_t(64) << 20;
    auto engine = start(l, opt);
    Collector c;
    c.sleep_ms_per_delta = 2;
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            Clock::now().time_since_epoch()).count();
    submit_ok(*engine, 1, make_request("", "long answer", {}, 2000), c, Priority::INTERACTIVE, now + 100);
    ck_assert(c.wait_done(1, 5000));
    std::printf("deadline: finish_reason %s after %zu tokens\n", c.finish[1].c_str(), c.tokens[1].size());
    ck_assert_str_eq(c.finish[1].c_str(), "deadline");
    ck_assert(c.tokens[1].size() < 2000);
    submit_ok(*engine, 2, make_request("", "already late", {}, 5), c, Priority::INTERACTIVE, now - 1);
    ck_assert(c.wait_done(2, 5000));
    ck_assert_str_eq(c.finish[2].c_str(), "deadline");
    ck_assert_int_eq(engine->metrics().kv_blocks_used, 0);
}
END_TEST

START_TEST(test_errors_do_not_stop_the_engine) {
    Loaded l = load("tiny-flash");
    EngineOptions opt;
    opt.kv_cache_bytes = size_t(64) << 20;
    auto engine = start(l, opt);
    Collector c;
    ChatRequest bad = make_request("", "what is this?", {}, 5);
    bad.images.push_back(ImageBytes::copy_of({'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'g'}));
    bad.messages.back().parts.insert(bad.messages.back().parts.begin(), {ChatPart::IMAGE, "", 0});
    submit_ok(*engine, 1, bad, c);
    ChatRequest corrupt = make_request("", "and this?", {"photo.jpg"}, 5);
    {
        auto *v = static_cast<const std::vector<uint8_t> *>(corrupt.images[0].owner.get());
        std::vector<uint8_t> half(v->begin(), v->begin() + long(v->size() / 3));
        corrupt.images[0] = ImageBytes::copy_of(std::move(half));
    }
    submit_ok(*engine, 2, corrupt, c);
    ChatRequest huge = make_request("", "too long", {}, 1 << 20);
    submit_ok(*engine, 3, huge, c);
    ChatRequest big_image = make_request("", "too many pixels", {"photo.jpg"}, 5);
    big_image.image_limits.max_pixels = 100;
    submit_ok(*engine, 4, big_image, c);
    for (uint64_t id = 1; id <= 4; ++id) ck_assert(c.wait_done(id));
    std::printf("errors: unsupported %d, corrupt %d, too long %d, too many pixels %d\n",
                c.error_status[1], c.error_status[2], c.error_status[3], c.error_status[4]);
    ck_assert_int_eq(c.error_status[1], 415);
    ck_assert_int_eq(c.error_status[2], 400);
    ck_assert_int_eq(c.error_status[3], 413);
    ck_assert_int_eq(c.error_status[4], 413);
    submit_ok(*engine, 5, make_request("", "still serving?", {"photo.jpg"}, 5), c);
    ck_assert(c.wait_done(5));
    ck_assert_str_eq(c.finish[5].c_str(), "length");
    ck_assert_int_eq(engine->metrics().requests_failed, 4);
    engine->drain();
    EngineRequest late;
    late.id = 6;
    late.chat = make_request("", "after drain", {}, 2);
    ck_assert(engine->submit(late, c.sink()).status == SubmitStatus::DRAINING);
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv) {
    return vlm_check_main(argc, argv, "engine", {
        {"engine", 120, {
            test_parity_default_chunks,
            test_parity_small_chunks,
            test_cancel_frees_blocks,
            test_interactive_before_bulk,
            test_large_image_does_not_stall_text,
            test_clients_take_turns,
            test_queue_full,
            test_prefix_and_vision_cache,
            test_coalescing,
            test_deadline,
            test_errors_do_not_stop_the_engine,
        }},
    });
}
