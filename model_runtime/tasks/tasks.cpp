// tasks.cpp: task templates (load + validate), language detection, request
// building and output post-processing for alt_text, summary and
// seo_description. See tasks.h for the rules; the reasons are noted here.
#include "tasks/tasks.h"
#include "util/utf8.h"

#include <jansson.h>

#include <algorithm>
#include <cstring>
#include <dirent.h>
#include <string_view>

namespace vlm {

namespace {

// ---------------------------------------------------------------- UTF-8 ---

struct CodePoint {
    char32_t cp;
    size_t   offset, size;   // bytes in the source string
};

std::vector<CodePoint> decode_utf8(const std::string &s) {
    std::vector<CodePoint> out;
    out.reserve(s.size());
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    size_t i = 0;
    while (i < s.size()) {
        size_t n = utf8_sequence_length(p + i, s.size() - i);
        char32_t cp;
        if (n == 0) {
            cp = 0xFFFD;
            n = 1;
        } else if (n == 1) {
            cp = p[i];
        } else {
            cp = p[i] & (0x7F >> n);
            for (size_t k = 1; k < n; k++) cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        out.push_back({cp, i, n});
        i += n;
    }
    return out;
}

bool is_cjk_ideograph(char32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x20000 && c <= 0x2FA1F);
}

bool is_latin_letter(char32_t c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7);
}

bool is_space_cp(char32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
           c == 0xA0 || c == 0x3000;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
    return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

bool istarts_with(std::string_view s, std::string_view p) {
    if (s.size() < p.size()) return false;
    for (size_t i = 0; i < p.size(); i++) {
        char a = s[i], b = p[i];
        if (a >= 'A' && a <= 'Z') a = char(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z') b = char(b - 'A' + 'a');
        if (a != b) return false;
    }
    return true;
}

// Trims ASCII whitespace, NBSP and the ideographic space at both ends.
std::string trim(const std::string &s) {
    std::vector<CodePoint> cps = decode_utf8(s);
    size_t b = 0, e = cps.size();
    while (b < e && is_space_cp(cps[b].cp)) b++;
    while (e > b && is_space_cp(cps[e - 1].cp)) e--;
    if (b == e) return "";
    return s.substr(cps[b].offset, cps[e - 1].offset + cps[e - 1].size - cps[b].offset);
}

void erase_all(std::string &s, std::string_view what) {
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p)) s.erase(p, what.size());
}

// ------------------------------------------------------------ templates ---

const char *const kTaskFiles[] = {"alt_text", "summary", "seo_description"};

// Placeholders each field may use; literal braces are written {{ and }}.
bool check_placeholders(const std::string &text, const std::vector<std::string> &allowed,
                        const std::string &where, std::vector<std::string> &used,
                        std::string &err) {
    for (size_t i = 0; i < text.size(); i++) {
        if (text[i] == '}') {
            if (i + 1 < text.size() && text[i + 1] == '}') { i++; continue; }
            err = where + ": unmatched '}' (write }} for a literal brace)";
            return false;
        }
        if (text[i] != '{') continue;
        if (i + 1 < text.size() && text[i + 1] == '{') { i++; continue; }
        size_t close = text.find('}', i);
        if (close == std::string::npos) {
            err = where + ": unterminated placeholder (write {{ for a literal brace)";
            return false;
        }
        std::string name = text.substr(i + 1, close - i - 1);
        if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
            std::string list;
            for (const auto &a : allowed) list += (list.empty() ? "{" : ", {") + a + "}";
            err = where + ": unknown placeholder {" + name + "} (allowed: " +
                  (list.empty() ? "none" : list) + ")";
            return false;
        }
        used.push_back(name);
        i = close;
    }
    return true;
}

// Single pass, so a value containing "{text}" is never expanded again.
std::string substitute(const std::string &text,
                       const std::vector<std::pair<std::string, std::string>> &values) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); i++) {
        char c = text[i];
        if ((c == '{' || c == '}') && i + 1 < text.size() && text[i + 1] == c) {
            out += c;
            i++;
            continue;
        }
        if (c == '{') {
            size_t close = text.find('}', i);
            std::string name = text.substr(i + 1, close - i - 1);
            for (const auto &[k, v] : values)
                if (k == name) out += v;
            i = close;
            continue;
        }
        out += c;
    }
    return out;
}

bool get_string(json_t *obj, const char *key, const std::string &where, std::string &out,
                std::string &err) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) {
        err = where + "." + key + ": " + (v ? "must be a string" : "missing");
        return false;
    }
    out = json_string_value(v);
    if (trim(out).empty() && (std::strcmp(key, "system") == 0 || std::strcmp(key, "user") == 0)) {
        err = where + "." + key + ": empty";
        return false;
    }
    if (!utf8_valid(out)) {
        err = where + "." + key + ": not valid UTF-8";
        return false;
    }
    return true;
}

bool only_keys(json_t *obj, const std::vector<const char *> &keys, const std::string &where,
               std::string &err) {
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        bool known = false;
        for (const char *want : keys) known = known || std::strcmp(k, want) == 0;
        if (!known) {
            err = where + ": unknown key \"" + k + "\"";
            return false;
        }
    }
    return true;
}

int count_of(const std::vector<std::string> &v, const char *name) {
    return int(std::count(v.begin(), v.end(), std::string(name)));
}

bool parse_variant(json_t *obj, const std::string &where, TaskTemplateVariant &out,
                   std::string &err) {
    if (!json_is_object(obj)) {
        err = where + ": " + (obj ? "must be an object" : "missing");
        return false;
    }
    if (!only_keys(obj, {"system", "user", "title_section", "text_section", "max_chars"}, where, err))
        return false;
    if (!get_string(obj, "system", where, out.system, err) ||
        !get_string(obj, "user", where, out.user, err) ||
        !get_string(obj, "title_section", where, out.title_section, err) ||
        !get_string(obj, "text_section", where, out.text_section, err))
        return false;
    std::vector<std::string> used;
    if (!check_placeholders(out.system, {}, where + ".system", used, err) ||
        !check_placeholders(out.user, {"title_section", "text_section", "max_chars"}, where + ".user",
                            used, err))
        return false;
    // Both sections must be placed exactly once, or the title/context a
    // request sends would be dropped (or doubled) without anyone noticing.
    for (const char *name : {"title_section", "text_section"})
        if (count_of(used, name) != 1) {
            err = where + ".user: must contain {" + name + "} exactly once";
            return false;
        }
    used.clear();
    if (!check_placeholders(out.title_section, {"title", "max_chars"}, where + ".title_section", used, err))
        return false;
    if (count_of(used, "title") != 1) {
        err = where + ".title_section: must contain {title} exactly once";
        return false;
    }
    used.clear();
    if (!check_placeholders(out.text_section, {"text", "max_chars"}, where + ".text_section", used, err))
        return false;
    if (count_of(used, "text") != 1) {
        err = where + ".text_section: must contain {text} exactly once";
        return false;
    }
    json_t *mc = json_object_get(obj, "max_chars");
    if (!json_is_object(mc)) {
        err = where + ".max_chars: " + (mc ? "must be an object {default, min, max}" : "missing");
        return false;
    }
    if (!only_keys(mc, {"default", "min", "max"}, where + ".max_chars", err)) return false;
    int *dst[] = {&out.default_max_chars, &out.min_max_chars, &out.max_max_chars};
    const char *names[] = {"default", "min", "max"};
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(mc, names[i]);
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 10000) {
            err = where + ".max_chars." + names[i] + ": must be an integer in 1..10000";
            return false;
        }
        *dst[i] = int(json_integer_value(v));
    }
    if (!(out.min_max_chars <= out.default_max_chars && out.default_max_chars <= out.max_max_chars)) {
        err = where + ".max_chars: needs min <= default <= max";
        return false;
    }
    return true;
}

}  // namespace

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

size_t utf8_length(const std::string &s) { return decode_utf8(s).size(); }

const TaskTemplate *TaskTemplates::find(TaskKind k) const {
    for (const auto &t : templates)
        if (t.kind == k) return &t;
    return nullptr;
}

bool parse_task_template(const std::string &json_text, const std::string &file, TaskTemplate &out,
                         std::string &err) {
    json_error_t jerr;
    json_t *root = json_loadb(json_text.data(), json_text.size(), JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err = file + ":" + std::to_string(jerr.line) + ": invalid JSON: " + jerr.text;
        return false;
    }
    bool ok = false;
    do {
        if (!json_is_object(root)) { err = file + ": top level must be an object"; break; }
        if (!only_keys(root, {"task", "version", "comment", "en", "zh"}, file, err)) break;
        json_t *task = json_object_get(root, "task");
        if (!json_is_string(task) || !parse_task_kind(json_string_value(task), out.kind) ||
            out.kind == TaskKind::CHAT) {
            err = file + ": \"task\" must be one of alt_text, summary, seo_description";
            break;
        }
        json_t *ver = json_object_get(root, "version");
        if (!json_is_integer(ver) || json_integer_value(ver) < 1 || json_integer_value(ver) > 1000000) {
            err = file + ": \"version\" must be an integer in 1..1000000 (it is part of the cache key)";
            break;
        }
        out.version = int(json_integer_value(ver));
        out.file = file;
        if (!parse_variant(json_object_get(root, "en"), file + ": en", out.en, err) ||
            !parse_variant(json_object_get(root, "zh"), file + ": zh", out.zh, err))
            break;
        ok = true;
    } while (false);
    json_decref(root);
    return ok;
}

bool load_task_templates(const std::string &dir, TaskTemplates &out, std::string &err) {
    out.templates.clear();
    DIR *d = opendir(dir.c_str());
    if (!d) {
        err = dir + ": cannot open prompts directory: " + std::strerror(errno);
        return false;
    }
    std::vector<std::string> names;
    while (dirent *e = readdir(d)) names.push_back(e->d_name);
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto &n : names) {
        if (!ends_with(n, ".json")) continue;
        std::string stem = n.substr(0, n.size() - 5);
        bool known = false;
        for (const char *f : kTaskFiles) known = known || stem == f;
        if (!known) {
            err = dir + "/" + n + ": not a task template (expected alt_text.json, summary.json, "
                  "seo_description.json)";
            return false;
        }
    }
    for (const char *f : kTaskFiles) {
        std::string path = dir + "/" + f + ".json";
        FILE *fp = std::fopen(path.c_str(), "rb");
        if (!fp) {
            err = path + ": " + std::strerror(errno);
            return false;
        }
        std::string text;
        char buf[4096];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, fp)) > 0 && text.size() < (1u << 20)) text.append(buf, n);
        std::fclose(fp);
        if (text.size() >= (1u << 20)) {
            err = path + ": larger than 1 MiB";
            return false;
        }
        TaskTemplate t;
        if (!parse_task_template(text, path, t, err)) return false;
        if (std::string(task_kind_name(t.kind)) != f) {
            err = path + ": \"task\" is \"" + task_kind_name(t.kind) + "\" but the file is named " + f +
                  ".json";
            return false;
        }
        out.templates.push_back(std::move(t));
    }
    return true;
}

TaskLanguage detect_language(const std::string &text) {
    size_t cjk = 0, latin_words = 0;
    bool in_word = false;
    for (const CodePoint &c : decode_utf8(text)) {
        bool latin = is_latin_letter(c.cp);
        if (latin && !in_word) latin_words++;
        in_word = latin;
        if (is_cjk_ideograph(c.cp)) cjk++;
    }
    // A Latin word carries about as much as two Chinese characters, so weigh
    // words, not letters: "在 Kubernetes cluster 上部署模型" is Chinese with
    // English terms, "A visit to the 故宫 in Beijing" is English.
    if (cjk > 0 && cjk * 10 >= (cjk + 2 * latin_words) * 3) return TaskLanguage::ZH;
    return TaskLanguage::EN;
}

std::string task_cache_tag(const ResolvedTask &r) {
    if (r.kind == TaskKind::CHAT) return "chat";
    return std::string(task_kind_name(r.kind)) + "/" + task_language_name(r.language) + "/v" +
           std::to_string(r.template_version);
}

bool build_task_request(const TaskTemplates &templates, const TaskParams &params, ChatRequest &req,
                        ResolvedTask &resolved, std::string &err) {
    resolved = ResolvedTask{};
    resolved.kind = params.kind;
    req.images = params.images;
    req.messages.clear();
    if (params.kind == TaskKind::CHAT) {
        if (params.messages.empty()) { err = "chat: no messages"; return false; }
        if (params.max_tokens <= 0) { err = "chat: max_tokens must be positive"; return false; }
        size_t n_image_parts = 0;
        for (const auto &m : params.messages)
            for (const auto &p : m.parts)
                if (p.kind == ChatPart::IMAGE) {
                    if (p.image < 0 || size_t(p.image) >= params.images.size()) {
                        err = "chat: image part refers to image " + std::to_string(p.image) + " of " +
                              std::to_string(params.images.size());
                        return false;
                    }
                    n_image_parts++;
                }
        if (n_image_parts != params.images.size()) {
            err = "chat: " + std::to_string(params.images.size()) + " images but " +
                  std::to_string(n_image_parts) + " image parts";
            return false;
        }
        req.messages = params.messages;
        req.chat.enable_thinking = params.enable_thinking;
        req.chat.add_generation_prompt = true;
        req.max_tokens = params.max_tokens;
        return true;
    }

    const TaskTemplate *tpl = templates.find(params.kind);
    const char *task = task_kind_name(params.kind);
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
        title.empty() ? "" : substitute(v.title_section, {{"title", title}, {"max_chars", max_chars}});
    std::string text_section =
        text.empty() ? "" : substitute(v.text_section, {{"text", text}, {"max_chars", max_chars}});
    std::string user = substitute(v.user, {{"title_section", title_section},
                                           {"text_section", text_section},
                                           {"max_chars", max_chars}});

    ChatMessage sys;
    sys.role = "system";
    sys.parts.push_back({ChatPart::TEXT, v.system, -1});
    ChatMessage msg;
    msg.role = "user";
    for (size_t i = 0; i < params.images.size(); i++) msg.parts.push_back({ChatPart::IMAGE, "", int(i)});
    msg.parts.push_back({ChatPart::TEXT, user, -1});
    req.messages.push_back(std::move(sys));
    req.messages.push_back(std::move(msg));
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

// ------------------------------------------------------ post-processing ---

namespace {

std::string strip_thinking(std::string s) {
    const size_t first_close = s.find("</think>"), first_open = s.find("<think>");
    // Reasoning whose <think> was in the prompt: everything up to </think>.
    if (first_close != std::string::npos && (first_open == std::string::npos || first_close < first_open))
        s.erase(0, first_close + 8);
    for (size_t open = s.find("<think>"); open != std::string::npos; open = s.find("<think>", open)) {
        size_t close = s.find("</think>", open + 7);
        if (close == std::string::npos) {
            s.erase(open);   // cut off while still thinking: none of it is an answer
            break;
        }
        s.erase(open, close + 8 - open);
    }
    erase_all(s, "</think>");
    return s;
}

bool is_token_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// <answer>, box markers and any <|name|> special token text.
std::string strip_tags(std::string s) {
    for (const char *t : {"<answer>", "</answer>", "<|begin_of_box|>", "<|end_of_box|>"}) erase_all(s, t);
    for (size_t p = s.find("<|"); p != std::string::npos; p = s.find("<|", p)) {
        size_t q = p + 2;
        while (q < s.size() && q - p < 40 && is_token_name_char(s[q])) q++;
        if (q + 1 < s.size() && q > p + 2 && s[q] == '|' && s[q + 1] == '>') s.erase(p, q + 2 - p);
        else p += 2;
    }
    return s;
}

// Collapses whitespace runs to one space (one_line) or keeps paragraphs:
// lines trimmed, runs of blank lines reduced to one.
std::string normalise_whitespace(const std::string &s, bool one_line) {
    std::string out;
    int pending_newlines = 0;
    bool pending_space = false;
    for (const CodePoint &c : decode_utf8(s)) {
        if (c.cp == '\n' && !one_line) {
            pending_newlines++;
            pending_space = false;
            continue;
        }
        if (is_space_cp(c.cp)) {
            pending_space = true;
            continue;
        }
        if (!out.empty()) {
            if (pending_newlines > 0) out += pending_newlines > 1 ? "\n\n" : "\n";
            else if (pending_space) out += ' ';
        }
        pending_newlines = 0;
        pending_space = false;
        out.append(s, c.offset, c.size);
    }
    return out;
}

const char *const kLabels[] = {
    "alternative text", "alt-text", "alt text", "alt", "image description", "description",
    "meta description", "seo description", "seo meta description", "summary", "caption",
    "替代文本", "图片描述", "图像描述", "描述", "摘要", "总结", "概要", "元描述", "SEO描述", "SEO 描述"};

bool is_label(const std::string &s) {
    for (const char *l : kLabels)
        if (s.size() == std::strlen(l) && istarts_with(s, l)) return true;
    return false;
}

std::string rstrip_colon(std::string s) {
    s = trim(s);
    if (ends_with(s, ":")) s.resize(s.size() - 1);
    else if (ends_with(s, "：")) s.resize(s.size() - 3);
    return trim(s);
}

// Markdown an editor would show literally: emphasis markers, headings,
// bullets, code ticks. Single-line outputs also lose leading bullets.
std::string strip_markdown(const std::string &s, bool single_line) {
    std::string t = s;
    erase_all(t, "**");
    erase_all(t, "__");
    erase_all(t, "`");
    std::string out;
    size_t start = 0;
    while (start <= t.size()) {
        size_t end = t.find('\n', start);
        if (end == std::string::npos) end = t.size();
        std::string line = t.substr(start, end - start);
        size_t i = 0;
        while (i < line.size() && line[i] == ' ') i++;
        size_t h = i;
        while (h < line.size() && line[h] == '#') h++;
        if (h > i && h < line.size() && line[h] == ' ') {
            i = h + 1;
            // "## Summary" announces the answer; it is not part of it.
            if (is_label(rstrip_colon(line.substr(i)))) i = line.size();
        }
        else if (i + 1 < line.size() && line[i] == '>' && line[i + 1] == ' ') i += 2;
        else if (single_line && i + 1 < line.size() && (line[i] == '-' || line[i] == '*' || line[i] == '+') &&
                 line[i + 1] == ' ')
            i += 2;
        out += line.substr(i);
        if (end < t.size()) out += '\n';
        start = end + 1;
    }
    return out;
}

// "Alt text:", "摘要：" and similar labels the model puts before its answer.
std::string strip_label(const std::string &s) {
    std::string best;
    for (const char *l : kLabels) {
        if (!istarts_with(s, l)) continue;
        std::string rest = s.substr(std::strlen(l));
        size_t i = 0;
        while (i < rest.size() && rest[i] == ' ') i++;
        if (starts_with(std::string_view(rest).substr(i), ":")) i += 1;
        else if (starts_with(std::string_view(rest).substr(i), "：")) i += 3;
        else continue;
        std::string stripped = trim(rest.substr(i));
        if (best.empty() || stripped.size() < best.size()) best = stripped;   // longest label wins
    }
    return best.empty() ? s : best;
}

// Removes one pair of wrapping quotes (a full stop right after the closing
// quote is kept, moved inside).
bool strip_wrapping_quotes(std::string &s) {
    static const std::pair<const char *, const char *> pairs[] = {
        {"\"", "\""}, {"'", "'"}, {"“", "”"}, {"‘", "’"}, {"「", "」"}, {"『", "』"},
        {"《", "》"}, {"*", "*"}, {"_", "_"}};
    for (const auto &[open, close] : pairs) {
        if (!starts_with(s, open)) continue;
        std::string body = s.substr(std::strlen(open));
        std::string tail;
        for (const char *stop : {".", "。"})
            if (ends_with(body, std::string(close) + stop)) {
                tail = stop;
                body.resize(body.size() - std::strlen(stop));
            }
        if (!ends_with(body, close) || body.size() < std::strlen(close)) continue;
        body.resize(body.size() - std::strlen(close));
        // "A "big" dog" is not wrapped: the closer must not appear inside.
        if (std::strcmp(open, close) == 0 && body.find(close) != std::string::npos) continue;
        if (body.find(open) != std::string::npos && std::strcmp(open, close) != 0) continue;
        s = trim(body + tail);
        return true;
    }
    return false;
}

// Openings that repeat what a screen reader already says ("image").
std::string strip_alt_opening(const std::string &s, TaskLanguage lang, bool &changed) {
    static const char *const en[] = {
        "this is an image of", "this is a picture of", "this is a photo of", "this is a photograph of",
        "this image shows", "this picture shows", "this photo shows", "this photograph shows",
        "the image shows", "the picture shows", "the photo shows", "the photograph shows",
        "an image showing", "a picture showing", "a photo showing", "image showing", "picture showing",
        "photo showing", "an image of", "a picture of", "a photograph of", "a photo of", "an photo of",
        "image of", "picture of", "photograph of", "photo of", "in this image,", "in this picture,",
        "in this photo,", "in the image,", "in the picture,", "in the photo,"};
    static const char *const zh[] = {
        "这张图片显示了", "这张图片展示了", "这张图片显示", "这张图片展示", "这张照片显示了",
        "这张照片展示了", "这张照片显示", "这张照片展示", "该图片显示了", "该图片展示了", "该图片显示",
        "该图片展示", "图片显示了", "图片展示了", "图片显示", "图片展示", "照片显示了", "照片展示了",
        "照片显示", "照片展示", "图中显示了", "图中显示", "图中展示了", "图中是", "图中有", "图片中是",
        "图片中有", "图片中", "照片中", "图中", "画面中"};
    changed = false;
    for (const char *p : en) {
        if (!istarts_with(s, p)) continue;
        size_t n = std::strlen(p);
        if (n < s.size() && is_token_name_char(s[n])) continue;   // "image of" vs "imageofthing"
        changed = true;
        return s.substr(n);
    }
    for (const char *p : zh)
        if (starts_with(s, p)) {
            changed = true;
            return s.substr(std::strlen(p));
        }
    // 这是一张/一幅…的图片/照片/图像: keep what the picture is of.
    for (const char *p : {"这是一张", "这是一幅", "这是一个", "这是"}) {
        if (!starts_with(s, p)) continue;
        std::string rest = s.substr(std::strlen(p));
        size_t clause_end = std::string::npos;
        for (const char *q : {"。", "，", "；", "！", "？"}) clause_end = std::min(clause_end, rest.find(q));
        std::string clause = rest.substr(0, clause_end == std::string::npos ? rest.size() : clause_end);
        for (const char *noun : {"的图片", "的照片", "的图像", "的图", "图片", "照片", "图像"}) {
            if (!ends_with(clause, noun) || clause.size() == std::strlen(noun)) continue;
            changed = true;
            return clause.substr(0, clause.size() - std::strlen(noun)) + rest.substr(clause.size());
        }
        break;
    }
    (void)lang;
    return s;
}

// Drops leading separators left after an opening was removed.
std::string strip_leading_separators(const std::string &s) {
    std::string t = trim(s);
    for (;;) {
        bool again = false;
        for (const char *sep : {":", ",", ";", "-", "：", "，", "；", "、", "—"})
            if (starts_with(t, sep)) {
                t = trim(t.substr(std::strlen(sep)));
                again = true;
            }
        if (!again) return t;
    }
}

void capitalise_first(std::string &s) {
    if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = char(s[0] - 'a' + 'A');
}

bool is_sentence_end(char32_t c) {
    return c == '.' || c == '!' || c == '?' || c == 0x3002 || c == 0xFF01 || c == 0xFF1F;
}
bool is_clause_mark(char32_t c) {
    return c == 0xFF1B || c == 0xFF0C || c == 0x3001 || c == ';' || c == ',';
}
bool is_closing_quote(char32_t c) { return c == '"' || c == '\'' || c == 0x201D || c == 0x2019 || c == 0x300D; }

std::string join(const std::vector<CodePoint> &cps, const std::string &src, size_t n) {
    if (n == 0) return "";
    return src.substr(0, cps[n - 1].offset + cps[n - 1].size);
}

// Words that make a cut English phrase read as unfinished.
bool is_dangling_word(const std::string &w) {
    static const char *const words[] = {"a", "an", "the", "and", "or", "of", "with", "in", "on", "at",
                                        "to", "for", "from", "by", "as", "but", "its", "their", "his",
                                        "her", "into", "onto", "over", "under", "while", "that", "which"};
    std::string lower;
    for (char c : w) lower += (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
    for (const char *d : words)
        if (lower == d) return true;
    return false;
}

std::string rstrip_chars(std::string s, std::initializer_list<const char *> marks) {
    for (;;) {
        s = trim(s);
        bool again = false;
        for (const char *m : marks)
            if (ends_with(s, m) && s.size() > std::strlen(m)) {
                s.resize(s.size() - std::strlen(m));
                again = true;
            }
        if (!again) return s;
    }
}

enum class Cut { NONE, SENTENCE, CLAUSE, WORD, HARD };

// Cut to at most `limit` code points; `how` says where it stopped (the
// caller decides on closing punctuation from it).
// `reserve` code points are kept free after a word or hard cut for the
// caller's closing mark; `keep_percent` is how much of the limit a cut at a
// sentence end must keep to be preferred over a longer cut mid-sentence.
std::string cut_to_length(const std::string &s, TaskLanguage lang, size_t limit, size_t reserve,
                          size_t keep_percent, Cut &how) {
    std::vector<CodePoint> cps = decode_utf8(s);
    how = Cut::NONE;
    if (cps.size() <= limit) return s;
    how = Cut::SENTENCE;
    // 1. The last sentence end inside the limit.
    for (size_t n = limit; n > 0 && n * 100 >= limit * keep_percent; n--) {
        char32_t c = cps[n - 1].cp;
        bool boundary = is_sentence_end(c) &&
                        (c >= 0x3000 || n == cps.size() || is_space_cp(cps[n].cp) || is_closing_quote(cps[n].cp));
        if (boundary) return trim(join(cps, s, n));
    }
    // A clause cut drops its mark, so the caller's "。" fits in its place.
    how = Cut::CLAUSE;
    if (lang == TaskLanguage::ZH) {
        // 2. Chinese: the last clause mark (dropped) inside the limit.
        for (size_t n = limit; n > 1; n--)
            if (is_clause_mark(cps[n - 1].cp) && n * 10 >= limit * 3)
                return rstrip_chars(join(cps, s, n - 1), {"，", "；", "、", ",", ";"});
        // Chinese words are not space separated; a long Latin run inside is
        // still better cut at a space.
    }
    // 3. A word boundary; dangling connectives and punctuation go.
    how = Cut::WORD;
    limit = limit > reserve ? limit - reserve : limit;
    for (size_t n = limit; n > 0; n--) {
        if (!is_space_cp(cps[n].cp) && !(n > 0 && is_space_cp(cps[n - 1].cp))) continue;
        std::string head = trim(join(cps, s, n));
        for (int k = 0; k < 3; k++) {
            size_t sp = head.rfind(' ');
            if (sp == std::string::npos || !is_dangling_word(head.substr(sp + 1))) break;
            head = trim(head.substr(0, sp));
        }
        head = rstrip_chars(head, {",", ";", ":", "-", "–", "—", "(", "，", "；", "：", "、"});
        if (!head.empty()) return head;
        break;
    }
    // 4. No boundary at all: a hard cut at a code point.
    how = Cut::HARD;
    return trim(join(cps, s, limit));
}

// U+FFFD (from bytes that were not UTF-8) and C0 / DEL / C1 controls other
// than the whitespace that normalisation turns into spaces or line breaks.
std::string drop_invisible_junk(const std::string &s) {
    std::string out;
    out.reserve(s.size());
    for (const CodePoint &c : decode_utf8(s)) {
        char32_t v = c.cp;
        bool junk = v == 0xFFFD || (v < 0x20 && v != '\n' && v != '\t' && v != '\r') || (v >= 0x7F && v <= 0x9F);
        if (!junk) out.append(s, c.offset, c.size);
    }
    return out;
}

bool ends_in_sentence_punct(const std::string &s) {
    std::vector<CodePoint> cps = decode_utf8(s);
    if (cps.empty()) return false;
    char32_t c = cps.back().cp;
    if (is_closing_quote(c) && cps.size() > 1) c = cps[cps.size() - 2].cp;
    return is_sentence_end(c) || c == 0x2026;
}

}  // namespace

std::string postprocess_task_output(TaskKind kind, TaskLanguage language, const std::string &text,
                                    int max_chars) {
    std::string s = strip_tags(strip_thinking(utf8_lossy(text)));
    if (kind == TaskKind::CHAT) return trim(s);
    // Text for an alt attribute or an excerpt: bytes that were not UTF-8 (a
    // sequence the model left unfinished) are dropped, not shown as U+FFFD,
    // and so are control characters, which editors strip or choke on.
    s = drop_invisible_junk(s);

    const bool one_line = kind != TaskKind::SUMMARY;
    s = normalise_whitespace(strip_markdown(trim(s), one_line), one_line);
    // Labels, quotes and openings can nest ("Alt text: "Image of a dog"").
    for (int round = 0; round < 4; round++) {
        std::string before = s;
        s = strip_label(s);
        while (strip_wrapping_quotes(s)) {}
        if (kind == TaskKind::ALT_TEXT) {
            bool changed;
            s = strip_alt_opening(s, language, changed);
            if (changed) s = strip_leading_separators(s);
        }
        s = trim(s);
        if (s == before) break;
    }
    if (kind == TaskKind::ALT_TEXT) {
        // "A dog" after "An image of a dog": capitalise what is now first.
        capitalise_first(s);
    }

    Cut how = Cut::NONE;
    const bool add_marks = kind != TaskKind::ALT_TEXT;
    if (max_chars > 0) {
        // Summaries and descriptions read better ending at a full sentence
        // even when that is shorter; an alt text keeps more of its phrase.
        s = cut_to_length(s, language, size_t(max_chars), add_marks ? 1 : 0, add_marks ? 40 : 60, how);
    }
    if (kind == TaskKind::ALT_TEXT) {
        // No closing full stop (one, not an ellipsis).
        for (const char *stop : {"。", "."})
            if (ends_with(s, stop) && !ends_with(s, "..")) {
                s.resize(s.size() - std::strlen(stop));
                s = trim(s);
            }
        return s;
    }
    if (!s.empty() && !ends_in_sentence_punct(s)) {
        // After a cut inside a clause the reader must see that text is
        // missing; otherwise the text just lacked its final stop.
        const char *mark = language == TaskLanguage::ZH ? "。" : ".";
        if (how == Cut::WORD || how == Cut::HARD) mark = "…";
        if (max_chars <= 0 || utf8_length(s) < size_t(max_chars)) s += mark;
    }
    return s;
}

}  // namespace vlm
