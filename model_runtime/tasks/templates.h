// templates.h: the versioned prompt template of each task, one variant per
// language, loaded once at startup from conf/prompts/<task>.json and
// checked hard (unknown keys, placeholders, ranges), so a broken template
// stops vlmd rather than a request.
// Not here: filling a template in for a request (task_request.h).
#pragma once

#include "tasks/task_kind.h"

#include <string>
#include <utility>
#include <vector>

namespace vlm {

// One language variant of one task's template. Placeholders:
//   user:          {title_section} {text_section} {max_chars}
//   title_section: {title}   (rendered only when a title is given)
//   text_section:  {text}    (rendered only when article text/context is given)
// Literal braces are written {{ and }}.
struct TaskTemplateVariant {
    std::string system;
    std::string user;
    std::string title_section;
    std::string text_section;
    int         default_max_chars = 0;
    int         min_max_chars = 0;   // smallest max_chars a request may ask for
    int         max_max_chars = 0;   // largest
};

struct TaskTemplate {
    TaskKind            kind = TaskKind::ALT_TEXT;
    int                 version = 0;        // raised on every wording change
    TaskTemplateVariant en, zh;
    const TaskTemplateVariant &variant(TaskLanguage l) const { return l == TaskLanguage::ZH ? zh : en; }
};

struct TaskTemplates {
    std::vector<TaskTemplate> templates;
    const TaskTemplate *find(TaskKind k) const;
};

// Loads alt_text.json, summary.json and seo_description.json from `dir`
// (every one must exist and be valid; other *.json files are refused so a
// misspelt name is not silently ignored). False with "file: reason".
bool load_task_templates(const std::string &dir, TaskTemplates &out, std::string &err);
// Parses one template file's text; `file` names it in messages.
bool parse_task_template(const std::string &json_text, const std::string &file,
                         TaskTemplate &out, std::string &err);

// Fills in placeholders in one pass, so a value containing "{text}" is
// never expanded again; "{{" and "}}" become literal braces. Text checked by
// parse_task_template only (every placeholder closed).
std::string substitute_placeholders(const std::string &text,
                                    const std::vector<std::pair<std::string, std::string>> &values);

}  // namespace vlm
