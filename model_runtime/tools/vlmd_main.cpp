// vlmd: the model daemon. Loads one model, starts the engine and serves the
// shared-memory protocol (ipc/vlm_ipc.h) on a unix socket until SIGTERM or
// SIGINT, then drains: stops accepting, finishes running requests, exits 0.
// Logs one key=value line per event on stderr through one Logger at the
// configured log_level (util/log.h: never prompt text, image bytes or
// credentials). Bad flags exit 2, a model or socket that cannot be used exits 1.
// Settings: --config FILE (vlmd_config.h, conf/vlmd.conf) first, then flags
// override it; the IPC flags below are vlmd_main's own.
#include "core/backend.h"
#include "serve/engine.h"
#include "serve/ipc_server.h"
#include "model/model.h"
#include "tasks/templates.h"
#include "text/tokenizer.h"
#include "serve/vlmd_config.h"
#include "backend/registry.h"
#include "util/log.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace {

const char *const usage =
    "usage: vlmd --model DIR --socket PATH [options]\n"
    "\n"
    "  --model DIR              Hugging Face GLM-4.6V model directory\n"
    "  --socket PATH            unix socket to listen on (SOCK_SEQPACKET)\n"
    "  --prompts DIR            task prompt templates (conf/prompts); without it\n"
    "                           only chat requests are served\n"
    "  --threads N              CPU threads (default: all)\n"
    "  --backend NAME           compute backend (default cpu)\n"
    "  --max-batch N            sequences decoding together (default 16)\n"
    "  --kv-cache-mb N          KV cache size (default 1024)\n"
    "  --queue-limit N          queued interactive requests (default 64)\n"
    "  --max-connections N      client connections (default 256)\n"
    "  --arena-mb N             per-connection request arena (default 64)\n"
    "  --result-arena-mb N      per-connection result arena (default 4)\n"
    "  --backpressure-timeout-ms N  disconnect a client that stops reading (default 10000)\n";

vlm::Logger g_log;   // stderr; the threshold follows log_level once it is read

// Startup errors are about the operator's files and flags (OperatorText),
// never about a request: none has arrived yet.
[[noreturn]] void die(int code, const std::string &msg)
{
    g_log.error("fatal", {{"reason", vlm::OperatorText(msg)}});
    std::exit(code);
}

long parse_long_or_die(const std::string &flag, const char *s, long lo, long hi)
{
    char *end = nullptr;
    errno = 0;
    long v = std::strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        die(2, flag + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                   "], got '" + s + "'");
    return v;
}

}  // namespace

int main(int argc, char **argv)
{
    vlm::VlmdConfig cfg;
    vlm::IpcServerOptions iopt;
    std::string err;
    bool prompts_given = false;
    // The config file first, wherever --config appears, so flags override it.
    for (int i = 1; i + 1 < argc; i++)
        if (std::string(argv[i]) == "--config" && !vlm::load_vlmd_config(argv[i + 1], cfg, err))
            die(2, err);
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&]() -> const char * {
            if (i + 1 >= argc) die(2, a + " needs a value (see --help)");
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            std::fputs(usage, stdout);
            std::fputs(vlm::vlmd_config_help().c_str(), stdout);
            return 0;
        } else if (a == "--config") {
            value();
        } else if (a == "--max-connections") {
            iopt.max_connections = int(parse_long_or_die(a, value(), 1, 65536));
        } else if (a == "--arena-mb") {
            iopt.request_arena_bytes = uint64_t(parse_long_or_die(a, value(), 1, 4096)) << 20;
        } else if (a == "--result-arena-mb") {
            iopt.result_arena_bytes = uint64_t(parse_long_or_die(a, value(), 1, 1024)) << 20;
        } else if (a == "--backpressure-timeout-ms") {
            iopt.backpressure_timeout_ms = int(parse_long_or_die(a, value(), 1, 3600000));
        } else if (a.rfind("--", 0) == 0) {
            if (a == "--prompts" || a == "--prompts-dir" || a == "--prompts_dir") prompts_given = true;
            std::string name = a == "--prompts" ? "prompts_dir" : a == "--socket" ? "socket_path"
                             : a == "--model" ? "model_dir" : a;
            if (!vlm::apply_flag(cfg, name, value(), err)) die(2, err);
        } else {
            die(2, "unknown argument '" + a + "' (see --help)");
        }
    }
    if (!vlm::validate_vlmd_config(cfg, err)) die(2, err);
    g_log.set_threshold(cfg.log_level);
    iopt.socket_path = cfg.socket_path;
    iopt.limits.max_images = cfg.max_images;
    iopt.limits.max_tokens = cfg.max_tokens_limit;
    iopt.limits.image_limits = cfg.image_limits;
    const std::string &model_dir = cfg.model_dir, &backend_name = cfg.backend;
    std::string prompts_dir = cfg.prompts_dir;
    struct stat pst;
    if (!prompts_given && stat(prompts_dir.c_str(), &pst) != 0) {
        g_log.warn("tasks_off", {{"prompts_dir", vlm::OperatorText(prompts_dir)}, {"reason", "not found"}});
        prompts_dir.clear();   // the default directory is optional; an explicit one is not
    }
    long threads = cfg.threads;
    vlm::EngineOptions eopt = cfg.engine;

    // Block the stop signals before any thread starts so that only the
    // signalfd sees them; a client that dies must not kill us with SIGPIPE.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    signal(SIGPIPE, SIG_IGN);
    int stop_fd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
    if (stop_fd < 0) die(1, std::string("signalfd: ") + std::strerror(errno));

    auto t0 = std::chrono::steady_clock::now();
    vlm::BackendOptions bopt;
    bopt.n_threads = int(threads);
    std::unique_ptr<vlm::Backend> backend = vlm::make_backend(backend_name, bopt, err);
    if (!backend) die(2, err);
    auto tok = vlm::Tokenizer::load(model_dir + "/tokenizer.json", err);
    if (!tok) die(1, err);
    std::unique_ptr<vlm::Model> model;
    if (!vlm::load_model(model_dir, *backend, model, err)) die(1, err);
    vlm::TaskTemplates templates;
    if (!prompts_dir.empty()) {
        if (!vlm::load_task_templates(prompts_dir, templates, err)) die(1, err);
        iopt.templates = &templates;
    }
    std::unique_ptr<vlm::Engine> engine = vlm::start_engine(*model, *tok, eopt, err);
    if (!engine) die(1, err);
    auto load_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    iopt.model_name = model_dir.substr(model_dir.find_last_of('/') == std::string::npos
                                           ? 0 : model_dir.find_last_of('/') + 1);
    g_log.info("model_loaded", {{"model", vlm::OperatorText(model_dir)}, {"backend", vlm::OperatorText(backend_name)},
                                {"load_ms", load_ms.count()},
                                {"tasks", iopt.templates ? vlm::LogWord("on") : vlm::LogWord("off")},
                                {"log_level", vlm::OperatorText(vlm::log_level_name(cfg.log_level))}});

    if (!vlm::run_ipc_server(*engine, *tok, iopt, g_log, stop_fd, err)) die(1, err);
    engine.reset();
    close(stop_fd);
    return 0;
}
