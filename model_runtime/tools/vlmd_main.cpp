// vlmd: the model daemon. Loads one model, starts the engine and serves the
// shared-memory protocol (ipc/vlm_ipc.h) on a unix socket until SIGTERM or
// SIGINT, then drains: stops accepting, finishes running requests, exits 0.
// Logs one key=value line per event on stderr through one Logger at the
// configured log_level (util/log.h: never prompt text, image bytes or
// credentials). Bad flags exit 2, a model or socket that cannot be used
// exits 1. Settings: --config FILE (serve/vlmd_config.h, conf/vlmd.conf)
// first, then flags override it; `vlmd --help` lists them all.
#include "backend/registry.h"
#include "core/backend.h"
#include "model/model.h"
#include "serve/engine.h"
#include "serve/ipc_server.h"
#include "serve/vlmd_config.h"
#include "tasks/templates.h"
#include "text/chat_format.h"
#include "text/tokenizer.h"
#include "tools/check_model.h"
#include "util/log.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace {

vlm::Logger g_log;   // stderr; the threshold follows log_level once it is read

// Startup errors are about the operator's files and flags (OperatorText),
// never about a request: none has arrived yet.
[[noreturn]] void die(int code, const std::string &msg)
{
    g_log.error("fatal", {{"reason", vlm::OperatorText(msg)}});
    std::exit(code);
}

// The configuration: --config FILE first (wherever it appears), then every
// other flag through the option table, so flags override the file.
vlm::VlmdConfig read_config(int argc, char **argv)
{
    vlm::VlmdConfig cfg;
    std::string err;
    for (int i = 1; i + 1 < argc; i++)
        if (std::string(argv[i]) == "--config" && !vlm::load_vlmd_config(argv[i + 1], cfg, err))
            die(2, err);
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::fputs(vlm::vlmd_config_help().c_str(), stdout);
            std::exit(0);
        }
        if (a.rfind("--", 0) != 0) die(2, "unknown argument '" + a + "' (see --help)");
        if (i + 1 >= argc) die(2, a + " needs a value (see --help)");
        const char *value = argv[++i];
        if (a != "--config" && !vlm::apply_flag(cfg, a, value, err)) die(2, err);
    }
    if (!vlm::validate_vlmd_config(cfg, err)) die(2, err);
    return cfg;
}

vlm::IpcServerOptions ipc_options(const vlm::VlmdConfig &cfg)
{
    vlm::IpcServerOptions o;
    o.socket_path = cfg.socket_path;
    o.max_connections = cfg.max_connections;
    o.request_arena_bytes = cfg.request_arena_bytes;
    o.result_arena_bytes = cfg.result_arena_bytes;
    o.backpressure_timeout_ms = cfg.backpressure_timeout_ms;
    o.limits.max_images = cfg.max_images;
    o.limits.max_tokens = cfg.max_tokens_limit;
    o.limits.image_limits = cfg.image_limits;
    const std::string &dir = cfg.model_dir;
    o.model_name = dir.substr(dir.find_last_of('/') == std::string::npos ? 0 : dir.find_last_of('/') + 1);
    return o;
}

}  // namespace

int main(int argc, char **argv)
{
    vlm::VlmdConfig cfg = read_config(argc, argv);
    g_log.set_threshold(cfg.log_level);
    vlm::IpcServerOptions iopt = ipc_options(cfg);
    std::string err;
    std::string prompts_dir = cfg.prompts_dir;
    struct stat pst;
    if (prompts_dir == vlm::VlmdConfig{}.prompts_dir && stat(prompts_dir.c_str(), &pst) != 0) {
        g_log.warn("tasks_off", {{"prompts_dir", vlm::OperatorText(prompts_dir)}, {"reason", "not found"}});
        prompts_dir.clear();   // the default directory is optional; one the operator names is not
    }

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
    bopt.n_threads = cfg.threads;
    std::unique_ptr<vlm::Backend> backend = vlm::make_backend(cfg.backend, bopt, err);
    if (!backend) die(2, err);
    // The directory is checked before anything is loaded: a broken one stops
    // vlmd with the first problem as its one-line reason.
    const vlm::ModelCheckReport check = vlm::check_model_dir(cfg.model_dir, cfg.backend);
    if (!check.ok) die(1, "model check: " + check.problem);
    g_log.info("model_check", {{"model", vlm::OperatorText(cfg.model_dir)},
                               {"summary", vlm::OperatorText(check.summary)}});
    auto tok = vlm::Tokenizer::load_dir(cfg.model_dir, err);   // with the chat template
    if (!tok) die(1, err);
    if (tok->chat_format()->uses_builtin())
        g_log.warn("chat_template_missing", {{"model", vlm::OperatorText(cfg.model_dir)},
                                             {"using", "built-in GLM-4.6V format"}});
    else
        g_log.info("chat_template", {{"file", vlm::OperatorText(tok->chat_format()->origin())}});
    std::unique_ptr<vlm::Model> model;
    vlm::WeightPlan plan;
    vlm::parse_weight_format(cfg.weights, plan.format);  // validated with the config
    plan.vision = cfg.weights_vision;
    plan.lm_head = cfg.weights_lm_head;
    plan.threads = cfg.threads;
    plan.cache_dir = cfg.weights_cache;
    std::string weights_info;
    if (!vlm::load_model(cfg.model_dir, *backend, plan, model, err, &weights_info)) die(1, err);
    vlm::TaskTemplates templates;
    if (!prompts_dir.empty()) {
        if (!vlm::load_task_templates(prompts_dir, templates, err)) die(1, err);
        iopt.templates = &templates;
    }
    std::unique_ptr<vlm::Engine> engine = vlm::start_engine(*model, *tok, cfg.engine, err);
    if (!engine) die(1, err);
    auto load_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    g_log.info("model_loaded", {{"model", vlm::OperatorText(cfg.model_dir)},
                                {"backend", vlm::OperatorText(cfg.backend)},
                                {"weights", vlm::OperatorText(cfg.weights)},
                                {"weights_info", vlm::OperatorText(weights_info)}, {"load_ms", load_ms.count()},
                                {"tasks", iopt.templates ? vlm::LogWord("on") : vlm::LogWord("off")},
                                {"log_level", vlm::OperatorText(vlm::log_level_name(cfg.log_level))}});

    if (!vlm::run_ipc_server(*engine, *tok, iopt, g_log, stop_fd, err)) die(1, err);
    engine.reset();
    close(stop_fd);
    return 0;
}
