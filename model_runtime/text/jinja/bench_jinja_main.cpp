// bench_jinja_main.cpp: bench-jinja, the cost of rendering an alt-text prompt
// (one system message, one user message with an image and text, thinking off,
// generation prompt on) with a GLM chat template, as vlmd will per request.
//   bench-jinja [TEMPLATE.jinja ...]   (default: the GLM-4.6V-family templates
//                                       under tests/fixtures/chat_templates/)
// Prints, per template, µs per render() and per make_chat_context() + render().
// The target is < 50 µs per render.
#include "chat_template.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

const char *const kAltTextRequest = R"({
  "messages": [
    {"role": "system", "content": "You write concise, factual alt text for images on web pages."},
    {"role": "user", "content": [
      {"type": "image"},
      {"type": "text", "text": "Write alt text for this image. Page title: \"Spring recipes\". Answer in English, at most 125 characters."}
    ]}
  ],
  "special_tokens": {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"},
  "kwargs": {"add_generation_prompt": true, "enable_thinking": false}
})";

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char **argv) {
    std::vector<std::string> paths;
    for (int i = 1; i < argc; ++i) paths.push_back(argv[i]);
    if (paths.empty()) {
        const std::string dir = std::string(VLM_SOURCE_DIR) + "/tests/fixtures/";
        paths = {dir + "chat_templates/glm-ocr.jinja", dir + "chat_templates/glm-4.1v-9b-thinking.jinja",
                 dir + "tokenizer/chat_template.jinja"};
    }
    json_error_t jerr;
    json_t *req = json_loads(kAltTextRequest, 0, &jerr);
    std::string err;
    int status = 0;
    for (const std::string &path : paths) {
        std::ifstream f(path, std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        auto tmpl = vlm::jinja::ChatTemplate::load(ss.str(), err);
        json_t *ctx = tmpl ? vlm::jinja::make_chat_context(json_object_get(req, "messages"), nullptr,
                                                           json_object_get(req, "special_tokens"),
                                                           json_object_get(req, "kwargs"), err)
                           : nullptr;
        std::string out;
        if (!tmpl || !ctx || !tmpl->render(ctx, out, err)) {
            std::fprintf(stderr, "%s: %s\n", path.c_str(), err.c_str());
            status = 1;
            continue;
        }
        // calibrate to ~0.3 s per measurement
        int n = 100;
        for (;;) {
            const auto t0 = std::chrono::steady_clock::now();
            for (int i = 0; i < n; ++i) tmpl->render(ctx, out, err);
            if (seconds_since(t0) > 0.05 || n >= (1 << 24)) break;
            n *= 4;
        }
        n = n * 6;
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < n; ++i) tmpl->render(ctx, out, err);
        const double render_us = seconds_since(t0) * 1e6 / n;
        t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < n; ++i) {
            json_t *c = vlm::jinja::make_chat_context(json_object_get(req, "messages"), nullptr,
                                                      json_object_get(req, "special_tokens"),
                                                      json_object_get(req, "kwargs"), err);
            tmpl->render(c, out, err);
            json_decref(c);
        }
        const double total_us = seconds_since(t0) * 1e6 / n;
        std::printf("%-60s %8.2f us/render  %8.2f us/(context+render)  %zu bytes  %s\n", path.c_str(), render_us,
                    total_us, out.size(), render_us < 50 ? "ok" : "OVER 50 us");
        json_decref(ctx);
    }
    json_decref(req);
    return status;
}
