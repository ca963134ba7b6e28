// templates.cpp: loading and checking the task templates (see templates.h).
#include "tasks/templates.h"
#include "tasks/task_text.h"

#include "util/utf8.h"

#include <jansson.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>

namespace vlm {

namespace {

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

std::string substitute_placeholders(const std::string &text,
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

}  // namespace vlm
