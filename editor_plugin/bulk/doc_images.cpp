// Scanners for ![alt](src), reference-style ![alt][id] and <img ...> plus the span-based rewriter.
// Leaves out: a full CommonMark or HTML5 parser; the scanners are bounded linear passes.
#include "doc_images.h"

#include "alt_quality.h"
#include "image_source.h"
#include "md_link_refs.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace vlm::bulk {

namespace {

bool ieq_prefix(const std::string& text, size_t pos, const char* word) {
    size_t n = std::strlen(word);
    if (pos + n > text.size()) return false;
    for (size_t i = 0; i < n; ++i)
        if (std::tolower(static_cast<unsigned char>(text[pos + i])) != word[i]) return false;
    return true;
}

size_t line_of(const std::string& text, size_t pos, size_t& cache_pos, size_t& cache_line) {
    if (pos < cache_pos) { cache_pos = 0; cache_line = 1; }
    cache_line += static_cast<size_t>(std::count(text.begin() + static_cast<long>(cache_pos),
                                                 text.begin() + static_cast<long>(pos), '\n'));
    cache_pos = pos;
    return cache_line;
}

// Parses one <img ...> tag starting at `pos` (at '<') and closing before `end`; returns the end
// (after '>') or npos.
size_t parse_img_tag(const std::string& text, size_t pos, size_t end, ImageRef& ref) {
    size_t i = pos + 4;  // after "<img"
    HtmlImageUrls urls;
    ref.syntax = ImageSyntax::html;
    ref.has_alt = false;
    ref.alt_begin = ref.alt_end = i;  // insertion point for a missing alt
    while (i < end) {
        while (i < end && (std::isspace(static_cast<unsigned char>(text[i])) || text[i] == '/')) ++i;
        if (i >= end) return std::string::npos;
        if (text[i] == '>') {
            ref.src = choose_html_image_src(urls);
            return i + 1;
        }
        size_t name_begin = i;
        while (i < end && !std::isspace(static_cast<unsigned char>(text[i])) && text[i] != '='
               && text[i] != '>' && !(text[i] == '/' && i + 1 < end && text[i + 1] == '>'))
            ++i;
        std::string name = text.substr(name_begin, i - name_begin);
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        size_t j = i;
        while (j < end && std::isspace(static_cast<unsigned char>(text[j]))) ++j;
        std::string value;
        size_t attr_end = i;
        if (j < end && text[j] == '=') {
            ++j;
            while (j < end && std::isspace(static_cast<unsigned char>(text[j]))) ++j;
            if (j >= end) return std::string::npos;
            if (text[j] == '"' || text[j] == '\'') {
                size_t close = text.find(text[j], j + 1);
                if (close == std::string::npos || close >= end) return std::string::npos;
                value = text.substr(j + 1, close - j - 1);
                attr_end = close + 1;
            } else {
                size_t k = j;
                while (k < end && !std::isspace(static_cast<unsigned char>(text[k])) && text[k] != '>') ++k;
                value = text.substr(j, k - j);
                attr_end = k;
            }
            i = attr_end;
        }
        if (name == "src") urls.src = decode_html_entities(value);
        else if (name == "data-src") urls.data_src = decode_html_entities(value);
        else if (name == "data-lazy-src") urls.data_lazy_src = decode_html_entities(value);
        else if (name == "data-original") urls.data_original = decode_html_entities(value);
        else if (name == "srcset") urls.srcset = decode_html_entities(value);
        else if (name == "data-srcset") urls.data_srcset = decode_html_entities(value);
        if (name == "class") ref.cls = decode_html_entities(value);
        if (name == "alt") {
            ref.has_alt = true;
            ref.alt = decode_html_entities(value);
            ref.alt_begin = name_begin;
            ref.alt_end = attr_end;
        }
        if (name.empty()) ++i;  // stray character: keep moving
    }
    return std::string::npos;
}

// The text of a Markdown alt with backslash escapes of punctuation removed.
std::string unescape_markdown(const std::string& text, size_t begin, size_t end) {
    std::string out;
    for (size_t k = begin; k < end; ++k) {
        if (text[k] == '\\' && k + 1 < end && std::ispunct(static_cast<unsigned char>(text[k + 1]))) ++k;
        out.push_back(text[k]);
    }
    return out;
}

// Look-ups the Markdown scanner repeats, answered in amortised constant time so that a
// file of many unclosed "![" or "(" stays a linear scan (each attempt used to search to the
// end of the file).
class MarkdownIndex {
public:
    explicit MarkdownIndex(const std::string& text) : text_(text) {}

    // The ']' closing the '[' at `open` (escapes honoured, nesting counted, on the same
    // line), or npos.
    size_t closing_bracket(size_t open) {
        if (!paired_) pair_brackets();
        auto it = std::lower_bound(pairs_.begin(), pairs_.end(), std::make_pair(open, size_t{0}));
        return it != pairs_.end() && it->first == open ? it->second : std::string::npos;
    }
    size_t next_close_paren(size_t from) { return next(from, ")", paren_); }
    size_t next_blank_line(size_t from) { return next(from, "\n\n", blank_); }

private:
    struct Cache { size_t asked = std::string::npos, answer = std::string::npos; };

    // A cached answer for an earlier position still holds if it lies at or after `from`.
    size_t next(size_t from, const char* what, Cache& c) {
        if (c.asked != std::string::npos && c.asked <= from && (c.answer == std::string::npos || c.answer >= from))
            return c.answer;
        c.asked = from;
        c.answer = text_.find(what, from);
        return c.answer;
    }

    void pair_brackets() {
        paired_ = true;
        std::vector<size_t> open;  // indices into pairs_
        for (size_t k = 0; k < text_.size(); ++k) {
            char c = text_[k];
            if (c == '\\') { ++k; continue; }
            // An alt never spans lines here: a line inside it could be a fence, a heading, a
            // reference definition..., which rewriting the alt on one line would remove.
            if (c == '\n') {
                open.clear();
                continue;
            }
            if (c == '[') {
                pairs_.emplace_back(k, std::string::npos);
                open.push_back(pairs_.size() - 1);
            } else if (c == ']' && !open.empty()) {
                pairs_[open.back()].second = k;
                open.pop_back();
            }
        }
    }

    const std::string& text_;
    bool paired_ = false;
    std::vector<std::pair<size_t, size_t>> pairs_;  // ('[' position, matching ']' or npos), ascending
    Cache paren_, blank_;
};

// Skips spaces and tabs and at most one line break (a blank line ends the paragraph).
size_t skip_inline_space(const std::string& text, size_t i, size_t limit) {
    bool newline = false;
    while (i < limit && (text[i] == ' ' || text[i] == '\t' || (text[i] == '\n' && !newline))) {
        newline = newline || text[i] == '\n';
        ++i;
    }
    return i;
}

// The inline form's "(src "title")" starting at `pos` (at '('), by CommonMark's grammar: a
// destination (<...> or without spaces, parentheses balanced, backslash escapes), then an
// optional title in "", '' or (), then ')'. Returns the end or npos. Anything else between
// the destination and ')' is not an image: an alt written into a later image must never turn
// an earlier failed attempt into a match.
size_t parse_inline_destination(const std::string& text, size_t pos, MarkdownIndex& index, std::string& src) {
    // Without a ')' before the paragraph ends there is no inline image here.
    size_t blank = index.next_blank_line(pos);
    size_t limit = blank == std::string::npos ? text.size() : blank;
    size_t first_close = index.next_close_paren(pos);
    if (first_close == std::string::npos || first_close >= limit) return std::string::npos;
    size_t i = skip_inline_space(text, pos + 1, limit);
    std::string raw;
    if (i < limit && text[i] == '<') {
        size_t k = i + 1;
        while (k < limit && text[k] != '>' && text[k] != '<' && text[k] != '\n') k += text[k] == '\\' && k + 1 < limit ? 2 : 1;
        if (k >= limit || text[k] != '>') return std::string::npos;
        raw = text.substr(i + 1, k - i - 1);
        i = k + 1;
    } else {
        int parens = 0;
        size_t b = i;
        while (i < limit && static_cast<unsigned char>(text[i]) > 0x20 && text[i] != 0x7F) {
            if (text[i] == '\\' && i + 1 < limit && std::ispunct(static_cast<unsigned char>(text[i + 1]))) { i += 2; continue; }
            // Nesting is capped as CommonMark parsers cap it, which also bounds the work of
            // an attempt that never closes.
            if (text[i] == '(') { if (++parens > 32) return std::string::npos; }
            else if (text[i] == ')') { if (parens == 0) break; --parens; }
            ++i;
        }
        if (parens != 0) return std::string::npos;
        raw = text.substr(b, i - b);
    }
    size_t k = skip_inline_space(text, i, limit);
    if (k < limit && k > i && (text[k] == '"' || text[k] == '\'' || text[k] == '(')) {
        char closer = text[k] == '(' ? ')' : text[k];
        size_t j = k + 1;
        while (j < limit && text[j] != closer) {
            if (closer == ')' && text[j] == '(') return std::string::npos;
            j += text[j] == '\\' && j + 1 < limit ? 2 : 1;
        }
        if (j >= limit) return std::string::npos;
        k = skip_inline_space(text, j + 1, limit);
    }
    if (k >= limit || text[k] != ')') return std::string::npos;
    src = unescape_markdown(raw, 0, raw.size());
    return k + 1;
}

// The "[label]" right after a reference image's alt, at `pos` (at '['); returns the end or npos.
size_t parse_reference_label(const std::string& text, size_t pos, std::string& raw) {
    size_t i = pos + 1;
    while (i < text.size() && text[i] != ']') {
        if (text[i] == '[' || i - pos > 1000) return std::string::npos;
        if (text[i] == '\\') ++i;
        ++i;
    }
    if (i >= text.size()) return std::string::npos;
    raw = text.substr(pos + 1, i - pos - 1);
    return i + 1;
}

// Parses ![alt](src "title"), or with `defs` the reference forms ![alt][id], ![alt][] and
// ![alt], at `pos` (at '!'); returns the end or npos.
size_t parse_markdown_image(const std::string& text, size_t pos, const LinkRefs& defs, MarkdownIndex& index,
                            ImageRef& ref) {
    size_t alt_begin = pos + 2;
    size_t i = index.closing_bracket(pos + 1);
    if (i == std::string::npos) return std::string::npos;
    size_t alt_end = i;
    ref.syntax = ImageSyntax::markdown;
    ref.has_alt = true;
    ref.alt_begin = alt_begin;
    ref.alt_end = alt_end;
    ref.md_label.clear();
    std::string src;
    size_t end = std::string::npos;
    if (i + 1 < text.size() && text[i + 1] == '(') end = parse_inline_destination(text, i + 1, index, src);
    if (end == std::string::npos && !defs.dest.empty()) {
        std::string raw_alt = text.substr(alt_begin, alt_end - alt_begin);
        std::string label_raw;
        size_t label_end = std::string::npos;
        if (i + 1 < text.size() && text[i + 1] == '[') {
            label_end = parse_reference_label(text, i + 1, label_raw);
            if (label_end == std::string::npos) return std::string::npos;
        }
        bool collapsed = label_end != std::string::npos && label_raw.empty();
        bool shortcut = label_end == std::string::npos;
        auto it = defs.dest.find(normalize_link_label(collapsed || shortcut ? raw_alt : label_raw));
        if (it == defs.dest.end() || it->first.empty()) return std::string::npos;
        src = it->second;
        end = shortcut ? alt_end + 1 : label_end;
        if (collapsed || shortcut) {
            // The alt is also the label here: the rewrite keeps it as an explicit label.
            ref.md_label = raw_alt;
            if (collapsed) ref.alt_end = label_end - 1;  // covers "alt][", the final ']' stays
        }
    }
    if (end == std::string::npos) return std::string::npos;
    ref.src = src;
    ref.alt = unescape_markdown(text, alt_begin, alt_end);
    return end;
}

bool at_line_start(const std::string& text, size_t pos) {
    size_t k = pos;
    while (k > 0 && (text[k - 1] == ' ')) --k;
    return k == 0 || text[k - 1] == '\n';
}

}  // namespace

std::vector<ImageRef> find_images(const std::string& text, bool markdown) {
    std::vector<ImageRef> refs;
    size_t cache_pos = 0, cache_line = 1;
    size_t next_gt = 0;  // position of the next '>' at or after the last "<img" seen
    MarkdownIndex md_index(text);
    LinkRefs defs;
    if (markdown) defs = find_link_definitions(text);
    size_t next_def = 0;
    size_t i = 0;
    while (i < text.size()) {
        char c = text[i];
        // Definition lines are never scanned for images (`[x]: <img/y.png>` is a URL).
        while (next_def < defs.spans.size() && defs.spans[next_def].second <= i) ++next_def;
        if (next_def < defs.spans.size() && defs.spans[next_def].first == i) {
            i = defs.spans[next_def].second;
            continue;
        }
        if (c == '<' && text.compare(i, 4, "<!--") == 0) {
            size_t end = text.find("-->", i + 4);
            i = end == std::string::npos ? text.size() : end + 3;
            continue;
        }
        if (!markdown && c == '<' && (ieq_prefix(text, i, "<script") || ieq_prefix(text, i, "<style"))) {
            const char* close = ieq_prefix(text, i, "<script") ? "</script" : "</style";
            size_t k = i + 1;
            while (k < text.size() && !ieq_prefix(text, k, close)) ++k;
            i = k + 1;
            continue;
        }
        if (markdown && (c == '`' || c == '~') && at_line_start(text, i) && text.compare(i, 3, std::string(3, c)) == 0) {
            size_t eol = text.find('\n', i);
            if (eol == std::string::npos) break;
            size_t k = eol + 1;
            std::string fence(3, c);
            while (k < text.size()) {
                size_t line_end = text.find('\n', k);
                if (line_end == std::string::npos) line_end = text.size();
                size_t s = k;
                while (s < line_end && text[s] == ' ') ++s;
                if (text.compare(s, 3, fence) == 0) { k = line_end; break; }
                k = line_end + 1;
            }
            i = std::min(k, text.size());
            continue;
        }
        if (markdown && c == '`') {
            size_t run = 0;
            while (i + run < text.size() && text[i + run] == '`') ++run;
            size_t end = text.find(std::string(run, '`'), i + run);
            i = end == std::string::npos ? i + run : end + run;
            continue;
        }
        if (markdown && c == '\\') { i += 2; continue; }
        if (markdown && c == '!' && i + 1 < text.size() && text[i + 1] == '[') {
            ImageRef ref;
            size_t end = parse_markdown_image(text, i, defs, md_index, ref);
            if (end != std::string::npos) {
                ref.line = line_of(text, i, cache_pos, cache_line);
                ref.in_markdown = markdown;
                refs.push_back(ref);
                i = end;
                continue;
            }
        }
        if (c == '<' && ieq_prefix(text, i, "<img") && i + 4 < text.size()
            && (std::isspace(static_cast<unsigned char>(text[i + 4])) || text[i + 4] == '/' || text[i + 4] == '>')) {
            // In Markdown raw HTML cannot cross a blank line: neither may a tag's quotes.
            size_t blank = markdown ? md_index.next_blank_line(i) : std::string::npos;
            size_t region_end = blank == std::string::npos ? text.size() : blank;
            // No '>' left: no tag can close, and trying each "<img" to the end would be
            // quadratic. (In Markdown, see below: the rest of the paragraph is left alone.)
            if (next_gt != std::string::npos && next_gt <= i) next_gt = text.find('>', i);
            if (next_gt == std::string::npos) {
                if (!markdown) break;
                i = region_end;
                continue;
            }
            ImageRef ref;
            size_t end = parse_img_tag(text, i, region_end, ref);
            if (end != std::string::npos) {
                ref.line = line_of(text, i, cache_pos, cache_line);
                ref.tag_begin = i;
                ref.tag_end = end;
                ref.in_markdown = markdown;
                refs.push_back(ref);
                i = end;
                continue;
            }
            // A tag still open at the end of the file swallows the rest of it, as a browser
            // reads HTML. In Markdown it is only text, but an alt written later in the same
            // paragraph could close one of its quotes or the tag itself: that paragraph is
            // left alone.
            if (!markdown) break;
            i = region_end;
            continue;
        }
        ++i;
    }
    return refs;
}

std::string apply_alt_edits(const std::string& text, std::vector<AltEdit> edits) {
    std::sort(edits.begin(), edits.end(),
              [](const AltEdit& a, const AltEdit& b) { return a.ref->alt_begin < b.ref->alt_begin; });
    std::string out;
    out.reserve(text.size() + edits.size() * 64);
    size_t at = 0;
    for (const auto& e : edits) {
        out.append(text, at, e.ref->alt_begin - at);
        if (e.ref->syntax == ImageSyntax::markdown) {
            out += escape_markdown_alt(e.new_alt);
            if (!e.ref->md_label.empty()) out += "][" + e.ref->md_label;
        } else {
            std::string value = escape_html_attr(e.new_alt, e.ref->in_markdown);
            std::string attr = "alt=\"" + value + "\"";
            out += e.ref->has_alt ? attr : " " + attr;
        }
        at = e.ref->alt_end;
    }
    out.append(text, at, std::string::npos);
    return out;
}

std::string find_document_title(const std::string& text, bool markdown) {
    auto strip_tags = [](const std::string& s) {
        std::string out;
        bool in_tag = false;
        for (char c : s) {
            if (c == '<') in_tag = true;
            else if (c == '>') in_tag = false;
            else if (!in_tag) out.push_back(c);
        }
        return clean_generated_alt(decode_html_entities(out));
    };
    if (markdown) {
        size_t pos = 0;
        while (pos < text.size()) {
            size_t eol = text.find('\n', pos);
            if (eol == std::string::npos) eol = text.size();
            if (text.compare(pos, 2, "# ") == 0) return clean_generated_alt(text.substr(pos + 2, eol - pos - 2));
            pos = eol + 1;
        }
    }
    for (const char* tag : {"<title", "<h1"}) {
        for (size_t i = 0; i < text.size(); ++i) {
            if (!ieq_prefix(text, i, tag)) continue;
            size_t open_end = text.find('>', i);
            if (open_end == std::string::npos) break;
            std::string close = std::string("</") + (tag + 1);
            size_t k = open_end + 1;
            while (k < text.size() && !ieq_prefix(text, k, close.c_str())) ++k;
            std::string t = strip_tags(text.substr(open_end + 1, k - open_end - 1));
            if (!t.empty()) return clean_generated_alt(t.substr(0, 300));  // re-clean: the cut may split UTF-8
            break;
        }
    }
    return {};
}

}  // namespace vlm::bulk
