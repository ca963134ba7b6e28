// task_kind.cpp: see task_kind.h.
#include "tasks/task_kind.h"

namespace vlm {

const char *task_kind_name(TaskKind k) {
    switch (k) {
    case TaskKind::CHAT: return "chat";
    case TaskKind::ALT_TEXT: return "alt_text";
    case TaskKind::SUMMARY: return "summary";
    case TaskKind::SEO_DESCRIPTION: return "seo_description";
    }
    return "?";
}

bool parse_task_kind(const std::string &name, TaskKind &out) {
    for (TaskKind k : {TaskKind::CHAT, TaskKind::ALT_TEXT, TaskKind::SUMMARY, TaskKind::SEO_DESCRIPTION})
        if (name == task_kind_name(k)) {
            out = k;
            return true;
        }
    return false;
}

const char *task_language_name(TaskLanguage l) { return l == TaskLanguage::ZH ? "zh" : "en"; }

}  // namespace vlm
