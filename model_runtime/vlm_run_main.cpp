// vlm-run: one request against a model directory, from the command line.
// Text streams to stdout as it is generated; --json prints one object at the
// end instead. Bad arguments exit 2, bad files or model errors exit 1, always
// with one line on stderr saying why.
#include "backend.h"
#include "generate.h"
#include "model.h"
#include "tokenizer.h"
#include "utf8.h"

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
    "               [--backend cpu] [--threads N]\n"
    "\n"
    "  --model DIR        Hugging Face GLM-4.6V model directory\n"
    "  --image FILE       JPEG, PNG, WebP or GIF; repeat for several images\n"
    "  --prompt TEXT      the user's message (images come before it)\n"
    "  --system TEXT      optional system message\n"
    "  --max-tokens N     tokens to generate at most (default 256)\n"
    "  --temperature T    0 = greedy (default), else sample\n"
    "  --top-p P          nucleus sampling mass in (0, 1] (default 1)\n"
    "  --top-k K          sample among the K most likely tokens (default off)\n"
    "  --seed S           random seed for sampling (default 0)\n"
    "  --stop TEXT        stop before this text; repeatable\n"
    "  --logprobs K       report each token's logprob and the top K (0..20)\n"
    "  --think            let the model think before answering (off by default)\n"
    "  --json             print one JSON object instead of streaming text\n"
    "  --backend NAME     compute backend (default cpu)\n"
    "  --threads N        CPU threads (default: all)\n";

struct Options {
    std::string              model_dir;
    std::vector<std::string> images;
    std::string              prompt;
    bool                     has_prompt = false;
    std::string              system;
    bool                     has_system = false;
    std::vector<std::string> stops;
    int                      max_tokens = 256;
    double                   temperature = 0.0;
    double                   top_p = 1.0;
    long                     top_k = 0;
    unsigned long long       seed = 0;
    long                     logprobs = -1;
    bool                     think = false;
    bool                     json = false;
    bool                     ignore_eos = false;
    std::string              backend = "cpu";
    long                     threads = 0;
};

[[noreturn]] void die(int code, const std::string &msg)
{
    std::fprintf(stderr, "vlm-run: %s\n", msg.c_str());
    std::exit(code);
}

bool parse_long(const char *s, long lo, long hi, long &out)
{
    char *end = nullptr;
    errno = 0;
    long v = std::strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return false;
    out = v;
    return true;
}

bool parse_double(const char *s, double lo, double hi, double &out)
{
    char *end = nullptr;
    errno = 0;
    double v = std::strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !std::isfinite(v) || v < lo || v > hi)
        return false;
    out = v;
    return true;
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
            if (!parse_long(v, 1, 1 << 20, l))
                die(2, std::string("--max-tokens must be an integer in [1, 1048576], got '") + v + "'");
            o.max_tokens = int(l);
        } else if (a == "--temperature") {
            const char *v = value();
            if (!parse_double(v, 0.0, 100.0, d))
                die(2, std::string("--temperature must be a number in [0, 100], got '") + v + "'");
            o.temperature = d;
        } else if (a == "--top-p") {
            const char *v = value();
            if (!parse_double(v, 0.0, 1.0, d) || d <= 0.0)
                die(2, std::string("--top-p must be a number in (0, 1], got '") + v + "'");
            o.top_p = d;
        } else if (a == "--top-k") {
            const char *v = value();
            if (!parse_long(v, 0, 1 << 24, l))
                die(2, std::string("--top-k must be a non-negative integer, got '") + v + "'");
            o.top_k = l;
        } else if (a == "--seed") {
            const char *v = value();
            char *end = nullptr;
            errno = 0;
            o.seed = std::strtoull(v, &end, 10);
            if (errno != 0 || end == v || *end != '\0' || v[0] == '-')
                die(2, std::string("--seed must be a non-negative integer, got '") + v + "'");
        } else if (a == "--logprobs") {
            const char *v = value();
            if (!parse_long(v, 0, 20, l))
                die(2, std::string("--logprobs must be an integer in [0, 20], got '") + v + "'");
            o.logprobs = l;
        } else if (a == "--threads") {
            const char *v = value();
            if (!parse_long(v, 1, 1024, l))
                die(2, std::string("--threads must be an integer in [1, 1024], got '") + v + "'");
            o.threads = l;
        } else if (a == "--backend") {
            o.backend = value();
        } else if (a == "--think") {
            o.think = true;
        } else if (a == "--json") {
            o.json = true;
        } else if (a == "--ignore-eos") {
            o.ignore_eos = true;   // for golden tests: always generate max_tokens
        } else {
            die(2, "unknown argument '" + a + "' (see --help)");
        }
    }
    if (o.model_dir.empty()) die(2, "--model DIR is required (see --help)");
    if (!o.has_prompt) die(2, "--prompt TEXT is required (see --help)");
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

json_t *logprob_json(const vlm::Tokenizer &tok, const vlm::TokenLogprob &lp, bool with_top)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(lp.id));
    // A token can hold part of a UTF-8 sequence: "token" is the lossy text,
    // "bytes" the exact bytes, as OpenAI's API reports them.
    std::string raw = tok.token_bytes(lp.id), text = vlm::utf8_lossy(raw);
    json_object_set_new(o, "token", json_stringn(text.data(), text.size()));
    json_t *bytes = json_array();
    for (unsigned char c : raw) json_array_append_new(bytes, json_integer(c));
    json_object_set_new(o, "bytes", bytes);
    json_object_set_new(o, "logprob", json_real(lp.logprob));
    if (with_top) {
        json_t *top = json_array();
        for (const auto &[id, p] : lp.top) {
            vlm::TokenLogprob t;
            t.id = id;
            t.logprob = p;
            json_array_append_new(top, logprob_json(tok, t, false));
        }
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

}  // namespace

int main(int argc, char **argv)
{
    Options opt = parse_args(argc, argv);
    std::string err;

    vlm::ChatRequest req;
    req.max_tokens = opt.max_tokens;
    req.sampling.temperature = float(opt.temperature);
    req.sampling.top_p = float(opt.top_p);
    req.sampling.top_k = int(opt.top_k);
    req.sampling.seed = opt.seed;
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
    auto tok = vlm::Tokenizer::load(opt.model_dir + "/tokenizer.json", err);
    if (!tok) die(1, err);
    std::unique_ptr<vlm::Model> model;
    if (!vlm::load_model(opt.model_dir, *backend, model, err)) die(1, err);
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
