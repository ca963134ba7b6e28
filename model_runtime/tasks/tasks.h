// tasks.h: the editor-facing tasks vlmd serves besides raw chat: alt text for
// one image, an article summary and an SEO meta description. Each task has a
// versioned prompt template per language (conf/prompts/<task>.json, loaded
// once at startup), a request builder that turns task parameters into a
// ChatRequest (images as IMAGE parts, thinking off), and a post-processor that
// makes the model's text fit for direct use (no thinking, no wrappers, no
// "image of" openings, within the requested length).
// Not here: HTTP/JSON parsing of the request (nginx module / vlmd IPC), the
// cache key hashing (vlmd; task_cache_tag() gives this module's part of it),
// decorative-image judgement (the author decides in the editor).
//
// Lengths are counted in Unicode code points: one Chinese character is one.
#pragma once

#include "generate/request.h"

#include <string>
#include <vector>

namespace vlm {

enum class TaskKind { CHAT, ALT_TEXT, SUMMARY, SEO_DESCRIPTION };
enum class TaskLanguage { EN, ZH };

const char *task_kind_name(TaskKind k);        // "chat", "alt_text", ...
bool parse_task_kind(const std::string &name, TaskKind &out);
const char *task_language_name(TaskLanguage l); // "en", "zh"

// One language variant of one task's template. Placeholders:
//   user:          {title_section} {text_section} {max_chars}
//   title_section: {title}   (rendered only when a title is given)
//   text_section:  {text}    (rendered only when article text/context is given)
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
    int                 version = 0;
    std::string         file;               // where it was loaded from (messages)
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

// Language of article text: Chinese when CJK ideographs make up at least 30%
// of (ideographs + 2 x Latin words), English otherwise (also when there is no
// text). Japanese kanji count as CJK (only en and zh are served).
TaskLanguage detect_language(const std::string &text);

struct TaskParams {
    TaskKind                 kind = TaskKind::ALT_TEXT;
    std::string              language = "auto";   // "auto", "en", "zh"
    std::string              title;               // article title (optional)
    std::string              text;                // summary/seo: article text; alt_text: context
    int                      max_chars = 0;       // 0: the template's default
    std::vector<ImageBytes>  images;              // alt_text: exactly 1; summary/seo: 0..n
    // CHAT only: the caller's messages (IMAGE parts index `images`) and max_tokens.
    std::vector<ChatMessage> messages;
    int                      max_tokens = 0;      // CHAT: required > 0; tasks: 0 = derived
    bool                     enable_thinking = false;   // CHAT only; tasks always off
};

// What the builder decided; the caller needs it for the answer, the cache key
// and post-processing.
struct ResolvedTask {
    TaskKind     kind = TaskKind::CHAT;
    TaskLanguage language = TaskLanguage::EN;
    int          template_version = 0;   // 0 for CHAT
    int          max_chars = 0;          // 0 for CHAT
};

// "alt_text/zh/v3" or "chat": the task part of the cache key.
std::string task_cache_tag(const ResolvedTask &r);

// Fills req.messages, req.images, req.chat and req.max_tokens (sampling,
// stop strings and image limits are left as the caller set them). Task
// max_tokens is derived from max_chars (about 1 token per Chinese character,
// 3 English characters per token, plus room for a closing sentence); a
// non-zero params.max_tokens lowers it. False with a reason for: missing or
// extra images, max_chars outside the template's range, summary without text
// or images, unknown language, a CHAT request without messages.
bool build_task_request(const TaskTemplates &templates, const TaskParams &params,
                        ChatRequest &req, ResolvedTask &resolved, std::string &err);

// Makes model text ready for the editor. For every kind: thinking removed
// (<think>...</think> blocks, reasoning before a stray </think>, an unclosed
// <think> to the end), <answer>/box tags and stray special tokens removed.
// For the tasks additionally: markdown emphasis/heading/bullet markers,
// labels ("Alt text:", "摘要："), wrapping quotes removed; whitespace
// normalised (one line for alt_text and seo_description); trimmed to
// max_chars code points at a sentence end (.!?。！？) if that keeps enough
// of the text (60% of the limit for alt text, 40% otherwise), else at a
// clause boundary ；，、 (Chinese), else at a word boundary (dangling
// "the"/"and"... dropped), else hard at a code point.
// alt_text: "image of"/"a photo of"/"图片显示"/"这是一张…的图片" openings
// removed, first letter capitalised, no trailing full stop ("." or "。"; the
// alt is a phrase read inline and a stop after a mid-sentence cut would
// mislead; "?" and "!" stay). summary/seo_description: ends in sentence
// punctuation: "。" after a Chinese clause cut, "…" after a word or hard
// cut, a full stop when the model left it out (all within max_chars).
// SEO's 50-character minimum is asked of the model by the template; it is
// not padded here. The result may be empty (only thinking, or nothing): the
// caller reports that. max_chars <= 0: no trimming.
std::string postprocess_task_output(TaskKind kind, TaskLanguage language,
                                    const std::string &text, int max_chars);

// Count of UTF-8 code points (invalid bytes count one each).
size_t utf8_length(const std::string &s);

}  // namespace vlm
