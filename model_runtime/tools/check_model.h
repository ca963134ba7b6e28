// check_model.h: `vlm-run --check-model DIR` and the same check when vlmd
// starts. Reads a Hugging Face GLM-4.6V directory the way load_model and the
// tokenizer do, without running the model: every file present and parseable,
// every tensor the architecture needs present with the config's shape and a
// weight dtype (others listed as unexpected), config / tokenizer /
// generation config agreeing on token ids, the chat template loading (a
// construct vlm_jinja does not support fails with its line) and rendering a
// sample conversation, the tokenizer round-tripping a sample, and the memory
// the weights and a 4096-token KV cache take on the chosen backend.
// Stops at the first problem, which is one line naming the file.
#pragma once

#include "model/model_config.h"
#include "text/chat_prompt.h"
#include "text/tokenizer.h"

#include <cstdint>
#include <string>
#include <vector>

namespace vlm {

struct ModelCheckReport {
    bool                     ok = false;
    std::string              problem;   // first problem, one line (when !ok)
    std::vector<std::string> lines;     // the readable report, one check per line
    std::string              summary;   // one line for vlmd's log (when ok)
    int64_t                  weight_bytes = 0;
    int64_t                  kv_cache_bytes = 0;   // kKvCheckTokens tokens
};

constexpr int kKvCheckTokens = 4096;

// Checks `dir` for `backend_name` (cpu, cuda, cuda-emu: only the memory line
// depends on it). Always fills the report up to the first problem.
ModelCheckReport check_model_dir(const std::string &dir, const std::string &backend_name);

// The one place --check-model renders the sample conversation (system, an
// image with text, an answer, a follow-up; thinking off), through
// render_prompt and build_prompt_ids (text/chat_prompt.h), the path requests
// take: the directory's template (Tokenizer::chat_format) really rendered.
// `rendered` gets the text, `ids` the tokens (4 image tokens).
bool render_sample_conversation(const Tokenizer &tok, const ModelConfig &cfg,
                                std::string &rendered, std::vector<int32_t> &ids,
                                std::string &err);

}  // namespace vlm
