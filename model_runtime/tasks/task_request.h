// task_request.h: a task's parameters turned into the chat request the
// model runs: the template variant for the resolved language, the title and
// article text placed in it, the images as IMAGE parts, thinking off, and a
// token budget derived from the answer's length limit.
// Not here: parsing the parameters out of a request (serve/ipc_request.h),
// the answer (postprocess.h), the engine (task_service.h hands it over).
#pragma once

#include "generate/request.h"
#include "tasks/task_kind.h"
#include "tasks/templates.h"

#include <string>
#include <vector>

namespace vlm {

struct TaskParams {
    TaskKind                 kind = TaskKind::ALT_TEXT;   // never CHAT
    std::string              language = "auto";   // "auto", "en", "zh"
    std::string              title;               // article title (optional)
    std::string              text;                // summary/seo: article text; alt_text: context
    int                      max_chars = 0;       // 0: the template's default
    int                      max_tokens = 0;      // 0: derived from max_chars; > 0 lowers it
    std::vector<ImageBytes>  images;              // alt_text: exactly 1; summary/seo: 0..n
};

// What the builder decided; the answer and its post-processing need it.
struct ResolvedTask {
    TaskKind     kind = TaskKind::ALT_TEXT;
    TaskLanguage language = TaskLanguage::EN;
    int          template_version = 0;
    int          max_chars = 0;
};

// "alt_text/zh/v3": the task's part of an answer-cache key (language and
// template version decide the prompt, so they decide the answer).
std::string task_cache_tag(const ResolvedTask &r);

// Fills req.messages, req.images, req.chat and req.max_tokens (sampling,
// stop strings and image limits are left as the caller set them). Task
// max_tokens is derived from max_chars (about 1 token per Chinese character,
// 3 English characters per token, plus room for a closing sentence); a
// non-zero params.max_tokens lowers it. False with a reason for: a CHAT
// kind, no template, missing or extra images, max_chars outside the
// template's range, summary without text or images, unknown language, text
// that is not UTF-8.
bool build_task_request(const TaskTemplates &templates, const TaskParams &params,
                        ChatRequest &req, ResolvedTask &resolved, std::string &err);

}  // namespace vlm
