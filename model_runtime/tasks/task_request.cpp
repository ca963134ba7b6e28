// task_request.cpp: see task_request.h.
#include "tasks/task_request.h"
#include "tasks/language.h"
#include "tasks/task_text.h"

#include "util/utf8.h"

#include <algorithm>

namespace vlm {

std::string task_cache_tag(const ResolvedTask &r) {
    return std::string(task_kind_name(r.kind)) + "/" + task_language_name(r.language) + "/v" +
           std::to_string(r.template_version);
}

bool build_task_request(const TaskTemplates &templates, const TaskParams &params, ChatRequest &req,
                        ResolvedTask &resolved, std::string &err) {
    resolved = ResolvedTask{};
    resolved.kind = params.kind;
    const char *task = task_kind_name(params.kind);
    if (params.kind == TaskKind::CHAT) { err = "chat is not a task"; return false; }
    const TaskTemplate *tpl = templates.find(params.kind);
    if (!tpl) { err = std::string(task) + ": no template loaded"; return false; }
    if (params.language == "en") resolved.language = TaskLanguage::EN;
    else if (params.language == "zh") resolved.language = TaskLanguage::ZH;
    else if (params.language == "auto" || params.language.empty())
        resolved.language = detect_language(params.title + "\n" + params.text);
    else {
        err = std::string(task) + ": language must be auto, en or zh, not \"" + params.language + "\"";
        return false;
    }
    const TaskTemplateVariant &v = tpl->variant(resolved.language);
    resolved.template_version = tpl->version;
    resolved.max_chars = params.max_chars > 0 ? params.max_chars : v.default_max_chars;
    if (params.max_chars < 0 || resolved.max_chars < v.min_max_chars || resolved.max_chars > v.max_max_chars) {
        err = std::string(task) + ": max length " + std::to_string(params.max_chars) + " outside " +
              std::to_string(v.min_max_chars) + ".." + std::to_string(v.max_max_chars);
        return false;
    }
    if (params.kind == TaskKind::ALT_TEXT && params.images.size() != 1) {
        err = "alt_text: needs exactly one image, got " + std::to_string(params.images.size());
        return false;
    }
    if (params.kind != TaskKind::ALT_TEXT && trim(params.text).empty() && params.images.empty()) {
        err = std::string(task) + ": needs article text or images";
        return false;
    }
    if (!utf8_valid(params.title) || !utf8_valid(params.text)) {
        err = std::string(task) + ": title or text is not valid UTF-8";
        return false;
    }

    // A title is one line; flattening it keeps it from looking like more of
    // the instructions.
    std::string title = trim(params.title);
    std::replace(title.begin(), title.end(), '\n', ' ');
    std::replace(title.begin(), title.end(), '\r', ' ');
    std::string text = trim(params.text);
    std::string max_chars = std::to_string(resolved.max_chars);
    std::string title_section =
        title.empty() ? "" : substitute_placeholders(v.title_section, {{"title", title}, {"max_chars", max_chars}});
    std::string text_section =
        text.empty() ? "" : substitute_placeholders(v.text_section, {{"text", text}, {"max_chars", max_chars}});
    std::string user = substitute_placeholders(
        v.user, {{"title_section", title_section}, {"text_section", text_section}, {"max_chars", max_chars}});

    ChatMessage sys;
    sys.role = "system";
    sys.parts.push_back({ChatPart::TEXT, v.system, -1});
    ChatMessage msg;
    msg.role = "user";
    for (size_t i = 0; i < params.images.size(); i++) msg.parts.push_back({ChatPart::IMAGE, "", int(i)});
    msg.parts.push_back({ChatPart::TEXT, user, -1});
    req.messages.clear();
    req.messages.push_back(std::move(sys));
    req.messages.push_back(std::move(msg));
    req.images = params.images;
    req.chat.enable_thinking = false;
    req.chat.add_generation_prompt = true;

    // Room for the whole text plus a closing sentence; trimming happens after.
    // GLM's tokenizer averages > 3 English characters and > 1 Chinese
    // character per token, so these bounds are generous.
    int tokens = resolved.language == TaskLanguage::ZH ? resolved.max_chars + 32 : resolved.max_chars / 3 + 32;
    tokens = std::min(tokens, 4096);
    if (params.max_tokens > 0) tokens = std::min(tokens, params.max_tokens);
    req.max_tokens = tokens;
    return true;
}

}  // namespace vlm
