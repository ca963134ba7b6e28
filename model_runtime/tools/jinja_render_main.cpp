// jinja_render_main.cpp: jinja-render, a command-line front end to vlm_jinja.
//   jinja-render TEMPLATE CONTEXT.json [--chat] [--now 2025-06-07T09:05:03]
// Renders TEMPLATE with the variables in CONTEXT.json and writes the result to
// stdout (exit 0), or the error to stderr (exit 1; 2 for a load error).
// --chat treats CONTEXT.json as {"messages", "tools", "special_tokens",
// "kwargs"} and builds the variables with make_chat_context, as vlmd would.
#include "text/jinja/chat_template.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

int main(int argc, char **argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s TEMPLATE CONTEXT.json [--chat] [--now YYYY-MM-DDTHH:MM:SS]\n", argv[0]);
        return 64;
    }
    bool chat = false;
    std::tm now{};
    bool have_now = false;
    for (int i = 3; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--chat")) {
            chat = true;
        } else if (!std::strcmp(argv[i], "--now") && i + 1 < argc) {
            if (!strptime(argv[++i], "%Y-%m-%dT%H:%M:%S", &now)) {
                std::fprintf(stderr, "bad --now\n");
                return 64;
            }
            have_now = true;
        }
    }
    std::ifstream f(argv[1], std::ios::binary);
    if (!f) {
        std::fprintf(stderr, "%s: cannot read\n", argv[1]);
        return 64;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    json_error_t jerr;
    json_t *ctx = json_load_file(argv[2], JSON_ALLOW_NUL, &jerr);
    if (!ctx) {
        std::fprintf(stderr, "%s: %s\n", argv[2], jerr.text);
        return 64;
    }
    std::string err;
    if (chat) {
        json_t *built = vlm::jinja::make_chat_context(json_object_get(ctx, "messages"), json_object_get(ctx, "tools"),
                                                      json_object_get(ctx, "special_tokens"),
                                                      json_object_get(ctx, "kwargs"), err);
        json_decref(ctx);
        if (!built) {
            std::fprintf(stderr, "%s\n", err.c_str());
            return 64;
        }
        ctx = built;
    }
    auto tmpl = vlm::jinja::ChatTemplate::load(ss.str(), err);
    if (!tmpl) {
        std::fprintf(stderr, "%s\n", err.c_str());
        json_decref(ctx);
        return 2;
    }
    vlm::jinja::RenderOptions opt;
    if (have_now) opt.now = &now;
    std::string out;
    const bool ok = tmpl->render(ctx, out, err, opt);
    json_decref(ctx);
    if (!ok) {
        std::fprintf(stderr, "%s\n", err.c_str());
        return 1;
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}
