// vlm-run: one request against a model directory, from the command line, or
// (--daemon SOCKET) the same request sent to a running vlmd, with the same
// output; --daemon SOCKET --stats prints vlmd's metrics as JSON.
// Text streams to stdout as it is generated; --json prints one object at the
// end instead. Bad arguments exit 2, bad files or model errors exit 1, always
// with one line on stderr saying why.
#include "core/backend.h"
#include "util/cli_numbers.h"
#include "generate/generate.h"
#include "ipc/vlm_ipc_client.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "util/utf8.h"
#include "backend/registry.h"
#include "text/chat_format.h"
#include "tools/check_model.h"
#include "tools/cuda_selftest.h"

#include <jansson.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace {

const char *const usage =
    "usage: vlm-run --model DIR --prompt TEXT [--image FILE]... [--system TEXT]\n"
    "               [--max-tokens N] [--temperature T] [--top-p P] [--top-k K]\n"
    "               [--seed S] [--stop TEXT]... [--logprobs K] [--think] [--json]\n"
    "               [--backend cpu|cuda|cuda-emu] [--threads N]\n"
    "               [--weights bf16|int8|int4 [--quantize-vision] [--quantize-lm-head]]\n"
    "       vlm-run --model DIR --backend cuda|cuda-emu --selftest\n"
    "       vlm-run --check-model DIR [--backend NAME]\n"
    "       vlm-run --daemon SOCKET --prompt TEXT [same request options]\n"
    "       vlm-run --daemon SOCKET --stats\n"
    "\n"
    "  --model DIR        Hugging Face GLM-4.6V model directory\n"
    "  --image FILE       JPEG, PNG, WebP or GIF; repeat for several images\n"
    "  --prompt TEXT      the user's message (images come before it)\n"
    "  --system TEXT      optional system message\n"
    "  --max-tokens N     tokens to generate at most (default 256)\n"
    "  --temperature T    0 = greedy, else sample (default: the model's\n"
    "                     generation_config.json: its temperature when\n"
    "                     do_sample is true, else greedy)\n"
    "  --top-p P          nucleus sampling mass in (0, 1] (default: the model's)\n"
    "  --top-k K          sample among the K most likely tokens, 0 = off\n"
    "                     (default: the model's; its repetition_penalty too)\n"
    "  --seed S           seed for sampling: the same seed, the same answer\n"
    "                     (default: a fresh random seed each run)\n"
    "  --stop TEXT        stop before this text; repeatable\n"
    "  --logprobs K       report each token's logprob and the top K (0..20)\n"
    "  --think            let the model think before answering (off by default)\n"
    "  --json             print one JSON object instead of streaming text\n"
    "  --backend NAME     cpu (default), cuda (GPU build), cuda-emu (CUDA kernels\n"
    "                     on the CPU SIMT emulator; slow, for verification)\n"
    "  --check-model DIR  check a model directory without running it: files,\n"
    "                     tensors, token ids, template, tokenizer, memory; exit 0\n"
    "                     with a report, or 1 with the first problem\n"
    "  --selftest         with a CUDA backend: every op case of the op table\n"
    "                     against the reference, and one model step against\n"
    "                     the cpu backend, as a pass/fail table\n"
    "  --threads N        CPU threads (default: all)\n"
    "  --weights FORMAT   bf16 (default: the checkpoint's own dtype), int8 or\n"
    "                     int4: the text decoder's linear layers quantized at\n"
    "                     load (32-weight blocks, f16 scales)\n"
    "  --quantize-vision  with int8/int4: the vision tower's linear layers too\n"
    "  --quantize-lm-head with int8/int4: the lm_head too\n"
    "  --weights-cache DIR keep the quantized weights in DIR between runs\n"
    "                     (checked against the checkpoint's SHA-256; rebuilt\n"
    "                     when stale or corrupt)\n"
    "  --daemon SOCKET    send the request to the vlmd listening on SOCKET\n"
    "  --stats            with --daemon: print vlmd's metrics as JSON\n"
    "  --timeout-ms N     with --daemon: request deadline (default none)\n";

struct Options {
    std::string              model_dir;
    std::vector<std::string> images;
    std::string              prompt;
    bool                     has_prompt = false;
    std::string              system;
    bool                     has_system = false;
    std::vector<std::string> stops;
    int                      max_tokens = vlm::kDefaultMaxTokens;
    double                   temperature = 0.0;
    double                   top_p = 1.0;
    long                     top_k = 0;
    bool                     has_temperature = false, has_top_p = false, has_top_k = false;
    unsigned long long       seed = 0;
    bool                     has_seed = false;
    long                     logprobs = -1;
    bool                     think = false;
    bool                     json = false;
    bool                     ignore_eos = false;
    bool                     selftest = false;
    std::string              check_model_dir;
    std::string              backend = "cpu";
    long                     threads = 0;
    vlm::WeightPlan          weights;
    std::string              daemon_socket;
    bool                     stats = false;
    long                     timeout_ms = 0;
};

[[noreturn]] void die(int code, const std::string &msg)
{
    std::fprintf(stderr, "vlm-run: %s\n", msg.c_str());
    std::exit(code);
}

Options parse_args(int argc, char **argv)
{
    Options o;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&]() -> const char * {
            if (i + 1 >= argc) die(2, a + " needs a value (see --help)");
            return argv[++i];
        };
        long l = 0;
        double d = 0;
        if (a == "--help" || a == "-h") {
            std::fputs(usage, stdout);
            std::exit(0);
        } else if (a == "--model") {
            o.model_dir = value();
        } else if (a == "--check-model") {
            o.check_model_dir = value();
        } else if (a == "--image") {
            o.images.push_back(value());
        } else if (a == "--prompt") {
            o.prompt = value();
            o.has_prompt = true;
        } else if (a == "--system") {
            o.system = value();
            o.has_system = true;
        } else if (a == "--stop") {
            o.stops.push_back(value());
            if (o.stops.back().empty()) die(2, "--stop needs a non-empty text");
        } else if (a == "--max-tokens") {
            const char *v = value();
            if (!vlm::parse_long_in(v, 1, 1 << 20, l))
                die(2, std::string("--max-tokens must be an integer in [1, 1048576], got '") + v + "'");
            o.max_tokens = int(l);
        } else if (a == "--temperature") {
            const char *v = value();
            if (!vlm::parse_double_in(v, 0.0, 100.0, d))
                die(2, std::string("--temperature must be a number in [0, 100], got '") + v + "'");
            o.temperature = d;
            o.has_temperature = true;
        } else if (a == "--top-p") {
            const char *v = value();
            if (!vlm::parse_double_in(v, 0.0, 1.0, d) || d <= 0.0)
                die(2, std::string("--top-p must be a number in (0, 1], got '") + v + "'");
            o.top_p = d;
            o.has_top_p = true;
        } else if (a == "--top-k") {
            const char *v = value();
            if (!vlm::parse_long_in(v, 0, 1 << 24, l))
                die(2, std::string("--top-k must be a non-negative integer, got '") + v + "'");
            o.top_k = l;
            o.has_top_k = true;
        } else if (a == "--seed") {
            const char *v = value();
            char *end = nullptr;
            errno = 0;
            o.has_seed = true;
            o.seed = std::strtoull(v, &end, 10);
            if (errno != 0 || end == v || *end != '\0' || v[0] == '-')
                die(2, std::string("--seed must be a non-negative integer, got '") + v + "'");
        } else if (a == "--logprobs") {
            const char *v = value();
            if (!vlm::parse_long_in(v, 0, 20, l))
                die(2, std::string("--logprobs must be an integer in [0, 20], got '") + v + "'");
            o.logprobs = l;
        } else if (a == "--threads") {
            const char *v = value();
            if (!vlm::parse_long_in(v, 1, 1024, l))
                die(2, std::string("--threads must be an integer in [1, 1024], got '") + v + "'");
            o.threads = l;
        } else if (a == "--weights") {
            const char *v = value();
            if (!vlm::parse_weight_format(v, o.weights.format))
                die(2, std::string("--weights must be bf16, int8 or int4, got '") + v + "'");
        } else if (a == "--quantize-vision") {
            o.weights.vision = true;
        } else if (a == "--quantize-lm-head") {
            o.weights.lm_head = true;
        } else if (a == "--weights-cache") {
            o.weights.cache_dir = value();
        } else if (a == "--daemon") {
            o.daemon_socket = value();
        } else if (a == "--stats") {
            o.stats = true;
        } else if (a == "--timeout-ms") {
            const char *v = value();
            if (!vlm::parse_long_in(v, 1, 86400000, l))
                die(2, std::string("--timeout-ms must be an integer in [1, 86400000], got '") + v + "'");
            o.timeout_ms = l;
        } else if (a == "--backend") {
            o.backend = value();
        } else if (a == "--think") {
            o.think = true;
        } else if (a == "--json") {
            o.json = true;
        } else if (a == "--selftest") {
            o.selftest = true;
        } else if (a == "--ignore-eos") {
            o.ignore_eos = true;   // for golden tests: always generate max_tokens
        } else {
            die(2, "unknown argument '" + a + "' (see --help)");
        }
    }
    if (!o.check_model_dir.empty()) return o;
    if ((o.weights.vision || o.weights.lm_head || !o.weights.cache_dir.empty()) && !o.weights.quantized())
        die(2, "--quantize-vision, --quantize-lm-head and --weights-cache need --weights int8 or int4");
    if (o.stats && o.daemon_socket.empty()) die(2, "--stats needs --daemon SOCKET");
    if (o.model_dir.empty() && o.daemon_socket.empty())
        die(2, "--model DIR is required (see --help)");
    if (o.selftest && o.backend.rfind("cuda", 0) != 0)
        die(2, "--selftest checks a CUDA backend: add --backend cuda (or cuda-emu)");
    if (!o.has_prompt && !o.stats && !o.selftest) die(2, "--prompt TEXT is required (see --help)");
    return o;
}

bool read_file(const std::string &path, size_t max_bytes, std::vector<uint8_t> &out,
               std::string &err)
{
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        err = path + ": " + std::strerror(errno);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        err = path + ": not a regular file";
        return false;
    }
    if (size_t(st.st_size) > max_bytes) {
        err = path + ": " + std::to_string(st.st_size) + " bytes, over the image limit of " +
              std::to_string(max_bytes) + " bytes";
        return false;
    }
    std::ifstream f(path, std::ios::binary);
    out.resize(size_t(st.st_size));
    if (!f || !f.read(reinterpret_cast<char *>(out.data()), std::streamsize(out.size()))) {
        err = path + ": cannot read";
        return false;
    }
    return true;
}

// One token as OpenAI's API reports it: a token can hold part of a UTF-8
// sequence, so "token" is the lossy text and "bytes" the exact bytes.
json_t *token_json(int32_t id, const std::string &raw, float logprob)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(id));
    std::string text = vlm::utf8_lossy(raw);
    json_object_set_new(o, "token", json_stringn(text.data(), text.size()));
    json_t *bytes = json_array();
    for (unsigned char c : raw) json_array_append_new(bytes, json_integer(c));
    json_object_set_new(o, "bytes", bytes);
    json_object_set_new(o, "logprob", json_real(logprob));
    return o;
}

json_t *logprob_json(const vlm::Tokenizer &tok, const vlm::TokenLogprob &lp, bool with_top)
{
    json_t *o = token_json(lp.id, tok.token_bytes(lp.id), lp.logprob);
    if (with_top) {
        json_t *top = json_array();
        for (const auto &[id, p] : lp.top) json_array_append_new(top, token_json(id, tok.token_bytes(id), p));
        json_object_set_new(o, "top_logprobs", top);
    }
    return o;
}

void print_json(const vlm::Tokenizer &tok, const vlm::GenerationResult &r,
                double load_ms, bool with_top)
{
    json_t *o = json_object();
    std::string text = vlm::utf8_lossy(r.text);
    json_object_set_new(o, "text", json_stringn(text.data(), text.size()));
    json_t *tokens = json_array();
    for (int32_t id : r.tokens) json_array_append_new(tokens, json_integer(id));
    json_object_set_new(o, "tokens", tokens);
    json_object_set_new(o, "prompt_tokens", json_integer(json_int_t(r.prompt_ids.size())));
    json_object_set_new(o, "completion_tokens", json_integer(json_int_t(r.tokens.size())));
    json_object_set_new(o, "finish_reason", json_string(r.finish_reason.c_str()));
    json_t *lps = json_array();
    for (const auto &lp : r.logprobs) json_array_append_new(lps, logprob_json(tok, lp, with_top));
    json_object_set_new(o, "logprobs", lps);
    json_t *t = json_object();
    json_object_set_new(t, "load_ms", json_real(load_ms));
    json_object_set_new(t, "image_ms", json_real(r.timings.image_ms));
    json_object_set_new(t, "vision_ms", json_real(r.timings.vision_ms));
    json_object_set_new(t, "prefill_ms", json_real(r.timings.prefill_ms));
    json_object_set_new(t, "ttft_ms", json_real(r.timings.ttft_ms));
    json_object_set_new(t, "decode_ms", json_real(r.timings.decode_ms));
    double decode_tokens = r.tokens.size() > 1 ? double(r.tokens.size() - 1) : 0.0;
    json_object_set_new(t, "decode_tokens_per_s",
                        json_real(r.timings.decode_ms > 0 ? decode_tokens * 1000.0 / r.timings.decode_ms : 0.0));
    json_object_set_new(o, "timings", t);
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    std::printf("%s\n", s);
    std::free(s);
    json_decref(o);
}


// ---- --daemon: the same request through vlmd's shared-memory protocol ----

double ms_since(std::chrono::steady_clock::time_point t)
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

vlm_ipc_client *connect_daemon(const std::string &path)
{
    vlm_ipc_client *c = vlm_ipc_client_new();
    char err[256] = "";
    if (!c) die(1, "out of memory");
    if (vlm_ipc_client_connect(c, path.c_str(), err, sizeof err) != VLM_IPC_OK)
        die(1, std::string("cannot reach vlmd: ") + err);
    auto start = std::chrono::steady_clock::now();
    while (!vlm_ipc_client_ready(c)) {
        if (vlm_ipc_client_wait(c, 1000) == VLM_IPC_CLOSED)
            die(1, std::string("vlmd: ") + vlm_ipc_client_error(c));
        if (ms_since(start) > 10000) die(1, "vlmd: no handshake within 10 s");
    }
    return c;
}

// Waits for the next event of the only request in flight.
void next_event_or_die(vlm_ipc_client *c, vlm_ipc_event &ev)
{
    while (!vlm_ipc_next_event(c, &ev)) {
        int rc = vlm_ipc_client_wait(c, 1000);
        if (rc == VLM_IPC_ERROR) die(1, "vlmd: waiting failed");
    }
}

int run_stats(const Options &o)
{
    vlm_ipc_client *c = connect_daemon(o.daemon_socket);
    if (vlm_ipc_stats(c, nullptr, nullptr, nullptr) != VLM_IPC_OK)
        die(1, std::string("vlmd: cannot send: ") + vlm_ipc_client_error(c));
    vlm_ipc_event ev;
    next_event_or_die(c, ev);
    if (ev.kind != VLM_IPC_RES_STATS)
        die(1, "vlmd: " + std::string(ev.text, ev.text_length));
    std::fwrite(ev.text, 1, ev.text_length, stdout);
    std::fputc('\n', stdout);
    vlm_ipc_client_free(c);
    return 0;
}

// Reserves `size` bytes of the request arena (the image is read straight
// into shared memory: the only copy on its way to the decoder).
void *arena_alloc_or_die(vlm_ipc_client *c, uint64_t size, uint64_t &off)
{
    void *p = vlm_ipc_alloc(c, size, &off);
    if (!p) die(1, "vlmd: request does not fit the shared arena (" + std::to_string(size) + " bytes)");
    return p;
}

int run_via_daemon(const Options &o)
{
    vlm_ipc_client *c = connect_daemon(o.daemon_socket);
    std::vector<uint64_t> regions;
    json_t *images = json_array();
    for (const auto &path : o.images) {
        struct stat st;
        if (stat(path.c_str(), &st) != 0) die(1, path + ": " + std::strerror(errno));
        if (!S_ISREG(st.st_mode)) die(1, path + ": not a regular file");
        if (st.st_size <= 0) die(1, path + ": empty file");
        uint64_t off = 0;
        void *dst = arena_alloc_or_die(c, uint64_t(st.st_size), off);
        std::ifstream f(path, std::ios::binary);
        if (!f || !f.read(static_cast<char *>(dst), std::streamsize(st.st_size)))
            die(1, path + ": cannot read");
        regions.push_back(off);
        json_t *im = json_object();
        json_object_set_new(im, "offset", json_integer(json_int_t(off)));
        json_object_set_new(im, "length", json_integer(json_int_t(st.st_size)));
        json_array_append_new(images, im);
    }
    json_t *messages = json_array();
    if (o.has_system) {
        json_t *m = json_object();
        json_object_set_new(m, "role", json_string("system"));
        json_object_set_new(m, "content", json_stringn(o.system.data(), o.system.size()));
        json_array_append_new(messages, m);
    }
    json_t *content = json_array();
    for (size_t i = 0; i < o.images.size(); i++) {
        json_t *part = json_object();
        json_object_set_new(part, "type", json_string("image"));
        json_object_set_new(part, "image", json_integer(json_int_t(i)));
        json_array_append_new(content, part);
    }
    json_t *text = json_object();
    json_object_set_new(text, "type", json_string("text"));
    json_object_set_new(text, "text", json_stringn(o.prompt.data(), o.prompt.size()));
    json_array_append_new(content, text);
    json_t *user = json_object();
    json_object_set_new(user, "role", json_string("user"));
    json_object_set_new(user, "content", content);
    json_array_append_new(messages, user);
    json_t *body = json_object();
    json_object_set_new(body, "messages", messages);
    json_object_set_new(body, "images", images);
    json_object_set_new(body, "max_tokens", json_integer(o.max_tokens));
    // Left out when not given: vlmd then uses the model's generation_config.json.
    if (o.has_temperature) json_object_set_new(body, "temperature", json_real(o.temperature));
    if (o.has_top_p) json_object_set_new(body, "top_p", json_real(o.top_p));
    if (o.has_top_k) json_object_set_new(body, "top_k", json_integer(o.top_k));
    if (o.has_seed) json_object_set_new(body, "seed", json_integer(json_int_t(o.seed & 0x7fffffffffffffffULL)));
    json_object_set_new(body, "logprobs", json_integer(o.logprobs));
    json_object_set_new(body, "ignore_eos", json_boolean(o.ignore_eos));
    json_object_set_new(body, "enable_thinking", json_boolean(o.think));
    json_t *stops = json_array();
    for (const auto &st : o.stops) json_array_append_new(stops, json_stringn(st.data(), st.size()));
    json_object_set_new(body, "stop", stops);
    char *body_text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    size_t body_len = std::strlen(body_text);
    uint64_t body_off = 0;
    std::memcpy(arena_alloc_or_die(c, body_len, body_off), body_text, body_len);
    std::free(body_text);
    regions.push_back(body_off);
    if (regions.size() > VLM_IPC_MAX_REGIONS) die(2, "too many images for one request");

    auto start = std::chrono::steady_clock::now();
    if (vlm_ipc_submit(c, body_off, body_len, uint32_t(o.timeout_ms), 0, regions.data(), regions.size(),
                       nullptr, nullptr, nullptr) != VLM_IPC_OK)
        die(1, std::string("vlmd: cannot submit: ") + vlm_ipc_client_error(c));

    std::string all_text;
    std::vector<int32_t> tokens;
    json_t *lps = json_array();
    double ttft_ms = -1;
    vlm_ipc_event ev;
    for (;;) {
        next_event_or_die(c, ev);
        if (ev.kind == VLM_IPC_RES_ERROR)
            die(1, "vlmd: error " + std::to_string(ev.status) + ": " + std::string(ev.text, ev.text_length));
        if (ev.kind == VLM_IPC_RES_DONE) break;
        if (ev.kind != VLM_IPC_RES_DELTA) die(1, "vlmd: unexpected result kind");
        if (ttft_ms < 0 && ev.n_tokens > 0) ttft_ms = ms_since(start);
        all_text.append(ev.text, ev.text_length);
        if (!o.json && ev.text_length) {
            std::fwrite(ev.text, 1, ev.text_length, stdout);
            std::fflush(stdout);
        }
        for (uint32_t i = 0; i < ev.n_tokens; i++) tokens.push_back(vlm_ipc_event_token(&ev, i));
        size_t pos = 0;
        vlm_ipc_logprob lp;
        while (vlm_ipc_logprob_next(&ev, &pos, &lp)) {
            json_t *one = token_json(lp.id, std::string(reinterpret_cast<const char *>(lp.bytes), lp.n_bytes),
                                     lp.logprob);
            uint32_t n_top = 0;
            if (!vlm_ipc_logprob_count(&ev, &pos, &n_top)) break;
            json_t *top = json_array();
            for (uint32_t k = 0; k < n_top && vlm_ipc_logprob_next(&ev, &pos, &lp); k++)
                json_array_append_new(top, token_json(lp.id, std::string(reinterpret_cast<const char *>(lp.bytes), lp.n_bytes),
                                                      lp.logprob));
            if (o.logprobs > 0)
                json_object_set_new(one, "top_logprobs", top);
            else
                json_decref(top);
            json_array_append_new(lps, one);
        }
    }
    double total_ms = ms_since(start);
    if (!o.json) {
        std::fputc('\n', stdout);
        json_decref(lps);
    } else {
        json_t *out = json_object();
        std::string text = vlm::utf8_lossy(all_text);
        json_object_set_new(out, "text", json_stringn(text.data(), text.size()));
        json_t *ids = json_array();
        for (int32_t id : tokens) json_array_append_new(ids, json_integer(id));
        json_object_set_new(out, "tokens", ids);
        json_object_set_new(out, "prompt_tokens", json_integer(ev.prompt_tokens));
        json_object_set_new(out, "completion_tokens", json_integer(ev.completion_tokens));
        json_object_set_new(out, "finish_reason", json_string(vlm_ipc_finish_name(ev.finish_reason)));
        json_object_set_new(out, "logprobs", lps);
        // Timings as seen by the client; the daemon's internal split is in --stats.
        json_t *t = json_object();
        json_object_set_new(t, "load_ms", json_real(0.0));
        json_object_set_new(t, "ttft_ms", json_real(ttft_ms < 0 ? total_ms : ttft_ms));
        json_object_set_new(t, "total_ms", json_real(total_ms));
        json_object_set_new(out, "timings", t);
        char *s = json_dumps(out, JSON_COMPACT | JSON_ENSURE_ASCII);
        std::printf("%s\n", s);
        std::free(s);
        json_decref(out);
    }
    vlm_ipc_client_free(c);
    return 0;
}

// --check-model: the report on stdout; the first problem also as the one
// line on stderr, exit 1.
int run_check_model(const Options &o)
{
    std::string err;
    vlm::BackendOptions bopt;
    bopt.n_threads = 1;
    if (!vlm::make_backend(o.backend, bopt, err)) die(2, err);
    const vlm::ModelCheckReport r = vlm::check_model_dir(o.check_model_dir, o.backend);
    for (const auto &line : r.lines) std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    if (!r.ok) die(1, r.problem);
    std::printf("model directory is usable\n");
    return 0;
}

}  // namespace

int main(int argc, char **argv)
{
    Options opt = parse_args(argc, argv);
    if (!opt.check_model_dir.empty()) return run_check_model(opt);
    if (opt.stats) return run_stats(opt);
    if (!opt.daemon_socket.empty()) return run_via_daemon(opt);
    std::string err;

    vlm::ChatRequest req;
    req.max_tokens = opt.max_tokens;
    req.sampling.temperature = float(opt.temperature);
    req.sampling.top_p = float(opt.top_p);
    req.sampling.top_k = int(opt.top_k);
    req.from_model.temperature = !opt.has_temperature;
    req.from_model.top_p = !opt.has_top_p;
    req.from_model.top_k = !opt.has_top_k;
    req.from_model.repetition_penalty = true;
    req.sampling.seed = opt.seed;
    req.sampling.seeded = opt.has_seed;
    req.from_model.seed = !opt.has_seed;
    req.stop_strings = opt.stops;
    req.logprobs_top = int(opt.logprobs);
    req.ignore_eos = opt.ignore_eos;
    req.chat.enable_thinking = opt.think;

    for (const auto &path : opt.images) {
        std::vector<uint8_t> bytes;
        if (!read_file(path, req.image_limits.max_bytes, bytes, err)) die(1, err);
        req.images.push_back(vlm::ImageBytes::copy_of(std::move(bytes)));
    }
    if (opt.has_system) {
        vlm::ChatMessage sys;
        sys.role = "system";
        sys.parts.push_back({vlm::ChatPart::TEXT, opt.system, -1});
        req.messages.push_back(sys);
    }
    vlm::ChatMessage user;
    user.role = "user";
    for (size_t i = 0; i < opt.images.size(); i++)
        user.parts.push_back({vlm::ChatPart::IMAGE, "", int(i)});
    user.parts.push_back({vlm::ChatPart::TEXT, opt.prompt, -1});
    req.messages.push_back(user);

    auto t_load = std::chrono::steady_clock::now();
    vlm::BackendOptions bopt;
    bopt.n_threads = int(opt.threads);
    std::unique_ptr<vlm::Backend> backend = vlm::make_backend(opt.backend, bopt, err);
    if (!backend) die(2, err);
    // Each kernel and one model step against the cpu backend: a pass/fail table.
    if (opt.selftest) return vlm::run_cuda_selftest(*backend, opt.model_dir);
    auto tok = vlm::Tokenizer::load_dir(opt.model_dir, err);   // with the chat template
    if (!tok) die(1, err);
    if (tok->chat_format()->uses_builtin())
        std::fprintf(stderr, "vlm-run: warning: %s has no chat template (processor_config.json, chat_template.json, "
                     "chat_template.jinja, tokenizer_config.json): using the built-in GLM-4.6V format\n",
                     opt.model_dir.c_str());
    std::unique_ptr<vlm::Model> model;
    vlm::WeightPlan plan = opt.weights;
    plan.threads = int(opt.threads);
    std::string weights_info;
    if (!vlm::load_model(opt.model_dir, *backend, plan, model, err, &weights_info)) die(1, err);
    if (!weights_info.empty()) std::fprintf(stderr, "vlm-run: %s\n", weights_info.c_str());
    double load_ms = std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - t_load).count();

    vlm::GenerationResult result;
    vlm::TextSink sink;
    if (!opt.json) {
        sink = [](const std::string &piece) {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            return true;
        };
    }
    if (!vlm::generate(*model, *tok, req, sink, result, err)) {
        if (!opt.json) std::fflush(stdout);
        die(1, err);
    }
    if (opt.json)
        print_json(*tok, result, load_ms, opt.logprobs > 0);
    else
        std::fputc('\n', stdout);
    return 0;
}
