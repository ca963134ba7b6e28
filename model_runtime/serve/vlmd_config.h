// vlmd_config.h: vlmd's configuration: defaults, the config file
// (conf/vlmd.conf documents every key), and command-line overrides.
//
// File format: one `key value` per line; '#' starts a comment at the start of
// a line or after whitespace; blank lines are ignored; a value may be written
// in double quotes to hold spaces or '#'. Sizes take a binary suffix
// (K/KiB, M/MiB, G/GiB: 256M = 256 MiB); booleans are on/off, yes/no,
// true/false, 1/0. A key may appear once, except remote_images_allow, whose
// lines add to the list. Unknown keys are errors (with a suggestion), so a
// typo never silently leaves a default in place. Flags (`--max-batch 8` or
// `--max_batch 8`; --model, --socket and --prompts for the three keys every
// start names) override the file; a list flag replaces the list.
// Errors name the place: "vlmd.conf:12: ..." or "--max-batch: ...".
// Not here: reading argv (vlmd_main), reloading on SIGHUP.
#pragma once

#include "image/image.h"
#include "image/remote_image.h"
#include "serve/engine.h"
#include "serve/ipc_server.h"
#include "util/log.h"

#include <string>
#include <utility>
#include <vector>

namespace vlm {

struct VlmdConfig {
    std::string       model_dir = "/var/lib/vlm/models/GLM-4.6V-Flash";
    std::string       backend = "cpu";
    int               threads = 0;                   // 0: one per online CPU
    std::string       weights = "bf16";              // bf16 (as stored) | int8 | int4: model/weight_plan.h
    bool              weights_vision = false;        // quantize the vision tower's linear layers too
    bool              weights_lm_head = false;       // quantize the lm_head too
    std::string       weights_cache = "/var/cache/vlm";  // quantized weights kept here between runs; empty: off
    // Connections from nginx workers (IpcServerOptions; defaults from there).
    std::string       socket_path = "/run/vlm/vlmd.sock";
    int               max_connections = IpcServerOptions{}.max_connections;
    uint64_t          request_arena_bytes = IpcServerOptions{}.request_arena_bytes;
    uint64_t          result_arena_bytes = IpcServerOptions{}.result_arena_bytes;
    int               backpressure_timeout_ms = IpcServerOptions{}.backpressure_timeout_ms;
    EngineOptions     engine;                        // batching, KV cache, queues, caches
    std::string       prompts_dir = "/etc/vlm/prompts";
    RemoteImagePolicy remote_images;                 // enabled = false by default
    ImageLimits       image_limits;
    int               max_images = 8;                // per request
    int               max_tokens_limit = 4096;       // largest max_tokens a request may ask for
    LogLevel          log_level = LogLevel::INFO;
};

// Applies the settings in `path` on top of `cfg` (start from VlmdConfig{}).
bool load_vlmd_config(const std::string &path, VlmdConfig &cfg, std::string &err);
// The same for text already read; `source` names it in messages.
bool parse_vlmd_config(const std::string &text, const std::string &source, VlmdConfig &cfg,
                       std::string &err);
// One override: `name` with or without leading "--", '-' and '_' alike, or
// a short flag (--model, --socket, --prompts).
bool apply_flag(VlmdConfig &cfg, const std::string &name, const std::string &value, std::string &err);
// Checks across keys after file and flags (e.g. remote images on with an
// empty allowlist, socket path too long for a unix socket).
bool validate_vlmd_config(const VlmdConfig &cfg, std::string &err);

// Every key in file order with its current value (as the file would spell
// it): for the startup log line and `vlmd --print-config`.
std::vector<std::pair<std::string, std::string>> describe_vlmd_config(const VlmdConfig &cfg);
// The whole of `vlmd --help`: usage, then every option once, grouped as in
// conf/vlmd.conf, each with its value's kind, one line and its default.
std::string vlmd_config_help();

}  // namespace vlm
