// vlmd_config.cpp: the key table (name, range, doc, how to set and print
// each key), the file parser and the flag overrides (see vlmd_config.h).
#include "serve/vlmd_config.h"

#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>

namespace vlm {

namespace {

enum class Kind { STRING, INT, SIZE, BOOL, LIST, LEVEL };

// One option: a key of the configuration file and the flag that overrides
// it (--key-name, or a shorter `flag`). The table is the one list of
// vlmd's settings: the parser, the flags, --help and the startup
// description all read it. No two options exclude each other today; checks
// across keys are in validate_vlmd_config.
struct Key {
    const char *name;       // file key; flag --name with '-' for '_'
    const char *flag;       // a shorter flag besides, or nullptr
    const char *group;      // heading in --help (and in conf/vlmd.conf)
    const char *metavar;    // what the value is, for --help
    Kind        kind;
    int64_t     min, max;   // INT and SIZE
    const char *doc;        // one line for --help
    // Setters get a value already parsed to the key's kind.
    void (*set_int)(VlmdConfig &, int64_t);
    void (*set_str)(VlmdConfig &, const std::string &);
    void (*set_list)(VlmdConfig &, const std::vector<std::string> &, bool append);
    std::string (*get)(const VlmdConfig &);
};

std::string size_text(size_t v) {
    const char *suffix[] = {"", "K", "M", "G", "T"};
    int i = 0;
    while (i < 4 && v != 0 && v % 1024 == 0) {
        v /= 1024;
        i++;
    }
    return std::to_string(v) + suffix[i];
}

std::string join_list(const std::vector<std::string> &v) {
    std::string s;
    for (const auto &x : v) s += (s.empty() ? "" : " ") + x;
    return s;
}

#define INT_KEY(GROUP, NAME, MIN, MAX, FIELD, DOC)                                                        \
    Key {                                                                                               \
        NAME, nullptr, GROUP, "N", Kind::INT, MIN, MAX, DOC,                                            \
            [](VlmdConfig &c, int64_t v) { c.FIELD = decltype(c.FIELD)(v); }, nullptr, nullptr,         \
            [](const VlmdConfig &c) { return std::to_string(c.FIELD); }                                 \
    }
#define SIZE_KEY(GROUP, NAME, MIN, MAX, FIELD, DOC)                                                       \
    Key {                                                                                               \
        NAME, nullptr, GROUP, "SIZE", Kind::SIZE, MIN, MAX, DOC,                                        \
            [](VlmdConfig &c, int64_t v) { c.FIELD = decltype(c.FIELD)(v); }, nullptr, nullptr,         \
            [](const VlmdConfig &c) { return size_text(size_t(c.FIELD)); }                              \
    }
#define BOOL_KEY(GROUP, NAME, FIELD, DOC)                                                                 \
    Key {                                                                                               \
        NAME, nullptr, GROUP, "on|off", Kind::BOOL, 0, 1, DOC,                                          \
            [](VlmdConfig &c, int64_t v) { c.FIELD = v != 0; }, nullptr, nullptr,                       \
            [](const VlmdConfig &c) { return std::string(c.FIELD ? "on" : "off"); }                     \
    }
#define STR_KEY(GROUP, NAME, FLAG, METAVAR, FIELD, DOC)                                                   \
    Key {                                                                                               \
        NAME, FLAG, GROUP, METAVAR, Kind::STRING, 0, 0, DOC, nullptr,                                   \
            [](VlmdConfig &c, const std::string &v) { c.FIELD = v; }, nullptr,                          \
            [](const VlmdConfig &c) { return c.FIELD; }                                                 \
    }

const Key kKeys[] = {
    STR_KEY("model", "model_dir", "--model", "DIR", model_dir,
            "model directory, as Hugging Face lays it out"),
    STR_KEY("model", "backend", nullptr, "NAME", backend, "compute backend: cpu, or cuda if built with it"),
    INT_KEY("model", "threads", 0, 1024, threads, "compute threads; 0 = one per online CPU"),
    STR_KEY("model", "weights", "--weights", "bf16|int8|int4", weights,
            "weight format: bf16 keeps the checkpoint's; int8/int4 quantize the text decoder at load"),
    BOOL_KEY("model", "weights_vision", weights_vision, "with int8/int4: quantize the vision tower's linear layers too"),
    BOOL_KEY("model", "weights_lm_head", weights_lm_head, "with int8/int4: quantize the lm_head too"),
    STR_KEY("model", "weights_cache", nullptr, "DIR", weights_cache,
            "with int8/int4: keep the quantized weights here between restarts (empty: off)"),

    STR_KEY("connections", "socket_path", "--socket", "PATH", socket_path, "unix socket the nginx workers connect to"),
    INT_KEY("connections", "max_connections", 1, 65536, max_connections, "nginx worker connections at once"),
    SIZE_KEY("connections", "request_arena_bytes", 64 << 10, int64_t(4) << 30, request_arena_bytes,
             "shared memory per connection: requests, images"),
    SIZE_KEY("connections", "result_arena_bytes", 64 << 10, int64_t(1) << 30, result_arena_bytes,
             "shared memory per connection: answers"),
    INT_KEY("connections", "backpressure_timeout_ms", 1, 3600000, backpressure_timeout_ms,
            "drop a worker that leaves answers unread this long"),

    INT_KEY("scheduling", "max_batch", 1, 1024, engine.max_batch, "sequences decoding together"),
    SIZE_KEY("scheduling", "kv_cache_bytes", 1 << 20, int64_t(1) << 40, engine.kv_cache_bytes,
             "memory for the paged KV cache"),
    INT_KEY("scheduling", "kv_block_tokens", 1, 1024, engine.kv_block_tokens, "tokens per KV cache block"),
    INT_KEY("scheduling", "prefill_chunk", 16, 65536, engine.prefill_chunk_tokens,
            "prompt tokens prefilled per step per sequence"),
    INT_KEY("scheduling", "queue_limit_interactive", 0, 1000000, engine.queue_limit_interactive,
            "queued interactive requests before 429"),
    INT_KEY("scheduling", "queue_limit_bulk", 0, 1000000, engine.queue_limit_bulk, "queued bulk requests before 429"),
    SIZE_KEY("scheduling", "vision_cache_bytes", 0, int64_t(1) << 40, engine.vision_cache_bytes,
             "LRU cache of vision-encoder outputs; 0 = off"),
    BOOL_KEY("scheduling", "prefix_cache", engine.prefix_cache, "reuse KV blocks of identical prompt prefixes"),
    INT_KEY("scheduling", "image_workers", 0, 64, engine.image_workers,
            "threads decoding images off the engine thread; 0 = the engine thread decodes"),
    BOOL_KEY("scheduling", "fair_admission", engine.fair_admission,
             "within a priority, admit the client with the fewest running requests first"),

    STR_KEY("tasks", "prompts_dir", "--prompts", "DIR", prompts_dir,
            "directory of the task prompt templates"),

    SIZE_KEY("request limits", "image_max_bytes", 1024, int64_t(1) << 32, image_limits.max_bytes,
             "largest encoded image"),
    INT_KEY("request limits", "image_max_pixels", 1, int64_t(1) << 31, image_limits.max_pixels,
            "largest decoded width x height"),
    INT_KEY("request limits", "max_images", 0, 256, max_images, "images per request"),
    INT_KEY("request limits", "max_tokens_limit", 1, 1 << 20, max_tokens_limit,
            "largest max_tokens a request may ask for"),

    BOOL_KEY("remote images", "remote_images", remote_images.enabled,
             "fetch http(s) image URLs (allowed hosts only)"),
    Key{"remote_images_allow", nullptr, "remote images", "HOSTS", Kind::LIST, 0, 0,
        "allowed hosts: names, addresses, *.domain.tld",
        nullptr, nullptr,
        [](VlmdConfig &c, const std::vector<std::string> &v, bool append) {
            if (!append) c.remote_images.allowed_hosts.clear();
            c.remote_images.allowed_hosts.insert(c.remote_images.allowed_hosts.end(), v.begin(), v.end());
        },
        [](const VlmdConfig &c) { return join_list(c.remote_images.allowed_hosts); }},
    SIZE_KEY("remote images", "remote_images_max_bytes", 1024, int64_t(1) << 32, remote_images.max_bytes,
             "largest remote image body"),
    INT_KEY("remote images", "remote_images_timeout_ms", 100, 600000, remote_images.timeout_ms,
            "time for a whole fetch, redirects included"),
    INT_KEY("remote images", "remote_images_connect_timeout_ms", 100, 600000, remote_images.connect_timeout_ms,
            "time to connect"),
    INT_KEY("remote images", "remote_images_max_redirects", 0, 10, remote_images.max_redirects,
            "redirects followed (each one re-checked)"),

    Key{"log_level", nullptr, "logging", "LEVEL", Kind::LEVEL, 0, 0,
        "lowest level written: debug, info, warn, error", nullptr,
        [](VlmdConfig &c, const std::string &v) { parse_log_level(v, c.log_level); }, nullptr,
        [](const VlmdConfig &c) { return std::string(log_level_name(c.log_level)); }},
};

std::string canonical_name(std::string n) {
    if (n.rfind("--", 0) == 0) n = n.substr(2);
    for (char &c : n)
        if (c == '-') c = '_';
    return n;
}

const Key *find_key(const std::string &name) {
    for (const Key &k : kKeys)
        if (name == k.name) return &k;
    return nullptr;
}

// "--max-batch" for max_batch.
std::string flag_of(const char *name) {
    std::string flag = std::string("--") + name;
    for (char &c : flag)
        if (c == '_') c = '-';
    return flag;
}

// A flag as typed (--max-batch, --max_batch, or a short flag like --model).
const Key *find_flag(const std::string &flag) {
    for (const Key &k : kKeys)
        if (k.flag && flag == k.flag) return &k;
    return find_key(canonical_name(flag));
}

size_t edit_distance(const std::string &a, const std::string &b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); j++) prev[j] = j;
    for (size_t i = 1; i <= a.size(); i++) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); j++)
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

// The nearest key within two edits, or "".
std::string nearest_key(const std::string &name) {
    std::string best;
    size_t best_d = 3;
    for (const Key &k : kKeys) {
        size_t d = edit_distance(name, k.name);
        if (d < best_d) {
            best_d = d;
            best = k.name;
        }
    }
    return best;
}

bool parse_integer(const std::string &v, int64_t &out) {
    if (v.empty()) return false;
    errno = 0;
    char *end = nullptr;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || !(std::isdigit(static_cast<unsigned char>(v[0])) || v[0] == '-')) return false;
    out = x;
    return true;
}

bool parse_size(const std::string &v, int64_t &out) {
    size_t digits = 0;
    while (digits < v.size() && std::isdigit(static_cast<unsigned char>(v[digits]))) digits++;
    if (digits == 0 || digits > 18) return false;
    int64_t n = std::stoll(v.substr(0, digits));
    std::string suffix = v.substr(digits);
    int shift;
    if (suffix.empty() || suffix == "B") shift = 0;
    else if (suffix == "K" || suffix == "KiB" || suffix == "k") shift = 10;
    else if (suffix == "M" || suffix == "MiB") shift = 20;
    else if (suffix == "G" || suffix == "GiB") shift = 30;
    else if (suffix == "T" || suffix == "TiB") shift = 40;
    else return false;
    if (n > (INT64_MAX >> shift)) return false;
    out = n << shift;
    return true;
}

bool parse_bool(const std::string &v, int64_t &out) {
    for (const char *t : {"on", "yes", "true", "1"})
        if (v == t) return out = 1, true;
    for (const char *f : {"off", "no", "false", "0"})
        if (v == f) return out = 0, true;
    return false;
}

std::vector<std::string> split_list(const std::string &v) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : v + " ") {
        if (c == ' ' || c == ',' || c == '\t') {
            if (!cur.empty()) out.push_back(cur);
            cur.clear();
        } else cur += c;
    }
    return out;
}

// Sets one key; `why` is the reason without the place.
bool set_key(VlmdConfig &cfg, const Key &k, const std::string &value, bool append, std::string &why) {
    int64_t n = 0;
    switch (k.kind) {
    case Kind::STRING:
        if (value.empty()) {
            why = std::string(k.name) + ": needs a value";
            return false;
        }
        k.set_str(cfg, value);
        return true;
    case Kind::LEVEL: {
        LogLevel l;
        if (!parse_log_level(value, l)) {
            why = std::string(k.name) + ": expected debug, info, warn or error, got \"" + value + "\"";
            return false;
        }
        k.set_str(cfg, value);
        return true;
    }
    case Kind::BOOL:
        if (!parse_bool(value, n)) {
            why = std::string(k.name) + ": expected on or off, got \"" + value + "\"";
            return false;
        }
        k.set_int(cfg, n);
        return true;
    case Kind::INT:
    case Kind::SIZE:
        if (!(k.kind == Kind::INT ? parse_integer(value, n) : parse_size(value, n)) || n < k.min || n > k.max) {
            why = std::string(k.name) + ": expected " + (k.kind == Kind::INT ? "an integer" : "a size") + " in " +
                  (k.kind == Kind::INT ? std::to_string(k.min) : size_text(size_t(k.min))) + ".." +
                  (k.kind == Kind::INT ? std::to_string(k.max) : size_text(size_t(k.max))) + ", got \"" + value + "\"";
            return false;
        }
        k.set_int(cfg, n);
        return true;
    case Kind::LIST: {
        std::vector<std::string> items = split_list(value);
        std::string err;
        if (!validate_remote_allowlist(items, err)) {
            why = std::string(k.name) + ": " + err;
            return false;
        }
        k.set_list(cfg, items, append);
        return true;
    }
    }
    return false;
}

std::string trim(const std::string &s) {
    size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

bool parse_vlmd_config(const std::string &text, const std::string &source, VlmdConfig &cfg, std::string &err) {
    std::istringstream in(text);
    std::string line;
    int line_no = 0;
    std::vector<std::pair<std::string, int>> seen;
    while (std::getline(in, line)) {
        line_no++;
        const std::string where = source + ":" + std::to_string(line_no) + ": ";
        if (line.find('\0') != std::string::npos) {
            err = where + "NUL byte in line";
            return false;
        }
        std::string s = trim(line);
        if (s.empty() || s[0] == '#') continue;
        size_t sp = s.find_first_of(" \t");
        std::string key = s.substr(0, sp), value = sp == std::string::npos ? "" : trim(s.substr(sp));
        if (!value.empty() && value[0] == '"') {
            size_t close = value.find('"', 1);
            if (close == std::string::npos) {
                err = where + "unterminated quoted value";
                return false;
            }
            std::string rest = trim(value.substr(close + 1));
            if (!rest.empty() && rest[0] != '#') {
                err = where + "text after the quoted value";
                return false;
            }
            value = value.substr(1, close - 1);
        } else {
            // A comment starts at '#' after whitespace ("a#b" is a value).
            for (size_t i = 0; i < value.size(); i++)   // value[0] follows the key's whitespace
                if (value[i] == '#' && (i == 0 || value[i - 1] == ' ' || value[i - 1] == '\t')) {
                    value = trim(value.substr(0, i));
                    break;
                }
        }
        const Key *k = find_key(key);
        if (!k) {
            std::string near = nearest_key(key);
            err = where + "unknown key \"" + key + "\"" + (near.empty() ? "" : " (did you mean " + near + "?)");
            return false;
        }
        if (value.empty()) {
            err = where + key + ": needs a value";
            return false;
        }
        if (k->kind != Kind::LIST)
            for (const auto &[name, at] : seen)
                if (name == key) {
                    err = where + key + ": already set at line " + std::to_string(at);
                    return false;
                }
        seen.push_back({key, line_no});
        std::string why;
        if (!set_key(cfg, *k, value, true, why)) {
            err = where + why;
            return false;
        }
    }
    return true;
}

bool load_vlmd_config(const std::string &path, VlmdConfig &cfg, std::string &err) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        err = path + ": cannot open: " + std::strerror(errno);
        return false;
    }
    std::string text;
    char buf[4096];
    while (f.read(buf, sizeof buf) || f.gcount() > 0) {
        text.append(buf, size_t(f.gcount()));
        if (text.size() > (1u << 20)) {
            err = path + ": larger than 1 MiB";
            return false;
        }
    }
    return parse_vlmd_config(text, path, cfg, err);
}

bool apply_flag(VlmdConfig &cfg, const std::string &name, const std::string &value, std::string &err) {
    const Key *k = find_flag(name.rfind("--", 0) == 0 ? name : "--" + name);
    if (!k) {
        const std::string key = canonical_name(name);
        std::string near = nearest_key(key);
        err = flag_of(key.c_str()) + ": unknown option" +
              (near.empty() ? "" : " (did you mean " + flag_of(near.c_str()) + "?)");
        return false;
    }
    const std::string flag = k->flag && name == k->flag ? name : flag_of(k->name);
    std::string why;
    if (!set_key(cfg, *k, trim(value), false, why)) {
        err = flag + ": " + why.substr(std::strlen(k->name) + 2);
        return false;
    }
    return true;
}

bool validate_vlmd_config(const VlmdConfig &cfg, std::string &err) {
    if (cfg.weights != "bf16" && cfg.weights != "int8" && cfg.weights != "int4") {
        err = "weights: '" + cfg.weights + "' is not one of bf16, int8, int4";
        return false;
    }
    if (cfg.socket_path.size() >= sizeof(((struct sockaddr_un *)nullptr)->sun_path)) {
        err = "socket_path: longer than a unix socket path may be (107 bytes)";
        return false;
    }
    if (cfg.remote_images.enabled && cfg.remote_images.allowed_hosts.empty()) {
        err = "remote_images is on but remote_images_allow is empty (nothing could be fetched)";
        return false;
    }
    if (cfg.remote_images.max_bytes > cfg.image_limits.max_bytes) {
        err = "remote_images_max_bytes (" + size_text(cfg.remote_images.max_bytes) + ") exceeds image_max_bytes (" +
              size_text(cfg.image_limits.max_bytes) + ")";
        return false;
    }
    if (!cfg.remote_images.allow_loopback_for_tests_ports.empty()) {
        err = "allow_loopback_for_tests_ports is for tests only";
        return false;
    }
    return validate_remote_allowlist(cfg.remote_images.allowed_hosts, err);
}

std::vector<std::pair<std::string, std::string>> describe_vlmd_config(const VlmdConfig &cfg) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const Key &k : kKeys) out.push_back({k.name, k.get(cfg)});
    return out;
}

std::string vlmd_config_help() {
    const VlmdConfig defaults;
    auto flag_column = [](const Key &k) { return (k.flag ? k.flag : flag_of(k.name)) + " " + k.metavar; };
    size_t width = 0;
    std::vector<std::string> shorts, longs;
    for (const Key &k : kKeys) {
        width = std::max(width, flag_column(k).size());
        if (k.flag) {
            shorts.push_back(k.flag);
            longs.push_back(flag_of(k.name));
        }
    }
    auto and_list = [](const std::vector<std::string> &v) {
        std::string s;
        for (size_t i = 0; i < v.size(); i++) s += (i == 0 ? "" : i + 1 == v.size() ? " and " : ", ") + v[i];
        return s;
    };
    auto line = [&](const std::string &left, const std::string &doc) {
        return "  " + left + std::string(width + 2 - std::min(width, left.size()), ' ') + doc + "\n";
    };
    std::string out =
        "usage: vlmd [--config FILE] [--OPTION VALUE ...]\n"
        "\n"
        "Every option is a key of the configuration file: --max-batch 8 here is\n"
        "\"max_batch 8\" in the file (conf/vlmd.conf documents each one), and a flag\n"
        "overrides the file. Sizes take K, M, G or T (256M); booleans are on or off.\n"
        "Defaults are in brackets. " +
        and_list(shorts) + " are short for\n" + and_list(longs) + ".\n\n";
    out += line("--config FILE", "read settings from FILE before the flags");
    out += line("--help", "print this and exit");
    const char *group = "";
    for (const Key &k : kKeys) {
        if (std::strcmp(group, k.group) != 0) {
            group = k.group;
            out += std::string("\n") + group + ":\n";
        }
        std::string def = k.get(defaults);
        out += line(flag_column(k), std::string(k.doc) + " [" + (def.empty() ? "none" : def) + "]");
    }
    return out;
}

}  // namespace vlm
