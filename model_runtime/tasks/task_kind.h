// task_kind.h: the editor-facing tasks vlmd serves besides raw chat (alt
// text for one image, an article summary, an SEO meta description) and the
// two languages their templates are written in. Every other tasks/ header
// builds on these names.
#pragma once

#include <string>

namespace vlm {

enum class TaskKind { CHAT, ALT_TEXT, SUMMARY, SEO_DESCRIPTION };
enum class TaskLanguage { EN, ZH };

const char *task_kind_name(TaskKind k);         // "chat", "alt_text", ...
bool parse_task_kind(const std::string &name, TaskKind &out);
const char *task_language_name(TaskLanguage l);  // "en", "zh"

}  // namespace vlm
