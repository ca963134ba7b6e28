// postprocess.cpp: the passes of postprocess_task_output (see
// postprocess.h for the rules; the reasons are noted here).
#include "tasks/postprocess.h"
#include "tasks/task_text.h"

#include "util/utf8.h"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

namespace vlm {

namespace {

void erase_all(std::string &s, std::string_view what) {
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p)) s.erase(p, what.size());
}

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
    for (const CodePoint &c : code_points(s)) {
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
    std::vector<CodePoint> cps = code_points(s);
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
    for (const CodePoint &c : code_points(s)) {
        char32_t v = c.cp;
        bool junk = v == 0xFFFD || (v < 0x20 && v != '\n' && v != '\t' && v != '\r') || (v >= 0x7F && v <= 0x9F);
        if (!junk) out.append(s, c.offset, c.size);
    }
    return out;
}

bool ends_in_sentence_punct(const std::string &s) {
    std::vector<CodePoint> cps = code_points(s);
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
