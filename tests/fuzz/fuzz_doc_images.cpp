// libFuzzer target for vlm-bulk's scanners of untrusted Markdown/HTML files
// (editor_plugin/bulk/doc_images.cpp, md_link_refs.cpp, the pure string
// functions of image_source.cpp and alt_quality.cpp; nothing that touches the
// filesystem or the network).
//
// Input: byte 0 bit 0 = Markdown (else HTML); bits 1-2 == 3 = stress: the rest
// is repeated up to 64 KiB and every scan must finish in well under a second
// (they are meant to be linear); bits 3-5 rotate the replacement alts; bit 6
// also uses text cut from the input as replacement alts. The rest is the
// document.
//
// Checks (a violation traps, with the check's line on stderr):
// - every ImageRef span lies inside the text: Markdown alts between "![" and
//   ']', an empty alt span at "<img" when an HTML tag has none, HTML alt spans
//   inside their <img ...> tag; refs are in document order, never overlap, and
//   carry the right line number;
// - apply_alt_edits with a new (cleaned, as job_runner does) alt for every ref
//   keeps every byte outside the alt spans, and writes the alt escaped for its
//   syntax (the escaping decodes back to the alt) plus "][label" for ![a][]
//   and ![a];
// - the edited text scans to the same images (syntax, src) with the new alts,
//   no labels left to add, and the same edits applied again change nothing;
// - find_document_title, clean_generated_alt: valid UTF-8 (no overlongs,
//   surrogates or code points past U+10FFFF), no control characters or
//   backslashes, single inner spaces, trimmed; an HTML title is at most 300
//   bytes;
// - find_link_definitions: spans in order, inside the text, each at a '[';
//   normalize_link_label is idempotent and yields lower-case labels;
//   first_srcset_url / choose_html_image_src pick a candidate they were given;
//   decode_html_entities never grows the text.
// FUZZ_DOC_IMAGES_DEBUG=1 prints what each input found.
#include "../../editor_plugin/bulk/alt_quality.h"
#include "../../editor_plugin/bulk/doc_images.h"
#include "../../editor_plugin/bulk/image_source.h"
#include "../../editor_plugin/bulk/md_link_refs.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include "utf8_oracle.h"

using namespace vlm::bulk;

namespace {

#define CHECK(c)                                                                                  \
    do {                                                                                          \
        if (!(c)) {                                                                               \
            std::fprintf(stderr, "fuzz_doc_images: check failed: %s (line %d)\n", #c, __LINE__); \
            __builtin_trap();                                                                     \
        }                                                                                         \
    } while (0)

constexpr size_t kStressBytes = 64 * 1024;
constexpr double kStressSeconds = 1.0;  // a linear pass over 64 KiB takes milliseconds under ASan

// Model-style raw alts: job_runner passes clean_generated_alt() of these to the rewriter.
const char *const kRawAlts[] = {
    "A \"quoted\" caf\xc3\xa9 & a <b>bold</b> claim",
    "Brackets [a] ]b[ \\[c\\] and a back\\slash \\\\ at the end\\",
    "\xe4\xb8\x80\xe5\x8f\xaa\xe7\x8c\xab\xe5\x9c\xa8\xe7\xaa\x97\xe5\x8f\xb0\xe4\xb8\x8a (CJK)\nsecond line\\nthird",
    "it's 50% off: *stars* _under_ `code` ![x](y.png) <!-- -->",
    "&amp; &lt;img src=x&gt; &#39; (parens) ) ( ]: [id]",
    "",
    "  \t\n  ",
    "x",
};
constexpr size_t kNumRawAlts = sizeof kRawAlts / sizeof kRawAlts[0];

bool debug() {
    static const bool on = std::getenv("FUZZ_DOC_IMAGES_DEBUG") != nullptr;
    return on;
}

// What clean_generated_alt promises (alt_quality.h): valid UTF-8, whitespace and control
// characters collapsed to single spaces, trimmed, no backslashes.
void check_clean(const std::string &s) {
    CHECK(oracle_valid_utf8(s));
    for (size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        CHECK(c >= 0x20 && c != 0x7F && c != '\\');
        if (c == ' ') CHECK(i > 0 && i + 1 < s.size() && s[i + 1] != ' ');
    }
}

// Undoes escape_markdown_alt by CommonMark's rule: a backslash before ASCII punctuation
// is dropped. Every bracket, backquote and backslash must have been escaped.
bool md_unescape(const std::string &esc, std::string &out) {
    out.clear();
    for (size_t i = 0; i < esc.size(); ++i) {
        char c = esc[i];
        if (c == '\\') {
            if (i + 1 >= esc.size()) return false;
            c = esc[++i];
        } else if (c == '[' || c == ']' || c == '`') {
            return false;
        }
        out.push_back(c);
    }
    return true;
}

// A single-line alt written for `ref`: escaped, and for ![a][] / ![a] followed by "][label".
std::string expected_replacement(const ImageRef &ref, const std::string &alt) {
    if (ref.syntax == ImageSyntax::markdown) {
        std::string esc = escape_markdown_alt(alt), back;
        CHECK(md_unescape(esc, back) && back == alt);
        return ref.md_label.empty() ? esc : esc + "][" + ref.md_label;
    }
    std::string esc = escape_html_attr(alt, ref.in_markdown);
    CHECK(esc.find_first_of(ref.in_markdown ? "\"'<>[]()`" : "\"'<>`") == std::string::npos);
    CHECK(decode_html_entities(esc) == alt);
    return (ref.has_alt ? "" : " ") + std::string("alt=\"") + esc + "\"";
}

bool ieq_at(const std::string &s, size_t pos, const char *word) {
    for (size_t k = 0; word[k]; ++k) {
        if (pos + k >= s.size()) return false;
        char c = s[pos + k];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != word[k]) return false;
    }
    return true;
}

size_t ref_start(const ImageRef &r) {
    return r.syntax == ImageSyntax::markdown ? r.alt_begin - 2 : r.tag_begin;
}

void check_spans(const std::string &text, bool markdown, const std::vector<ImageRef> &refs) {
    size_t prev_end = 0;  // the first byte a later ref may use
    size_t line = 1, line_at = 0;
    for (const auto &r : refs) {
        CHECK(r.alt_begin <= r.alt_end && r.alt_end <= text.size());
        if (r.syntax == ImageSyntax::markdown) {
            CHECK(markdown);
            CHECK(r.has_alt && r.alt_begin >= 2);
            CHECK(text.compare(r.alt_begin - 2, 2, "![") == 0);
            CHECK(r.alt_end < text.size() && text[r.alt_end] == ']');
            if (!r.md_label.empty()) {
                // ![a] or ![a][]: the span is the label itself, or "label]["
                std::string span = text.substr(r.alt_begin, r.alt_end - r.alt_begin);
                CHECK(span == r.md_label || span == r.md_label + "][");
                CHECK(!normalize_link_label(r.md_label).empty());
            }
        } else {
            CHECK(r.tag_begin < r.tag_end && r.tag_end <= text.size());
            CHECK(ieq_at(text, r.tag_begin, "<img") && text[r.tag_end - 1] == '>');
            CHECK(r.tag_begin + 4 <= r.alt_begin && r.alt_end < r.tag_end);
            if (r.has_alt) CHECK(ieq_at(text, r.alt_begin, "alt"));
            else CHECK(r.alt_begin == r.tag_begin + 4 && r.alt_end == r.alt_begin && r.alt.empty());
        }
        size_t start = ref_start(r);
        CHECK(start >= prev_end);
        for (; line_at < start; ++line_at) line += text[line_at] == '\n';
        CHECK(r.line == line);
        prev_end = r.syntax == ImageSyntax::markdown ? r.alt_end + 1 : r.tag_end;
    }
}

void check_edits(const std::string &text, bool markdown, const std::vector<ImageRef> &refs,
                 const std::vector<std::string> &alts) {
    std::vector<AltEdit> edits;
    for (size_t i = 0; i < refs.size(); ++i) edits.push_back({&refs[i], alts[i]});
    // apply_alt_edits sorts; hand them over reversed so the order is its job
    std::vector<AltEdit> reversed(edits.rbegin(), edits.rend());
    const std::string out = apply_alt_edits(text, reversed);

    // Bytes outside the spans are carried over in order; each span holds its replacement.
    std::vector<std::pair<size_t, size_t>> repl_at;  // where each replacement sits in `out`
    size_t in_at = 0, out_at = 0;
    for (size_t i = 0; i < refs.size(); ++i) {
        const ImageRef &r = refs[i];
        size_t keep = r.alt_begin - in_at;
        CHECK(out.compare(out_at, keep, text, in_at, keep) == 0);
        out_at += keep;
        std::string repl = expected_replacement(r, alts[i]);
        CHECK(out.compare(out_at, repl.size(), repl) == 0);
        repl_at.emplace_back(out_at, out_at + repl.size());
        out_at += repl.size();
        in_at = r.alt_end;
    }
    CHECK(out.size() - out_at == text.size() - in_at);
    CHECK(out.compare(out_at, std::string::npos, text, in_at, std::string::npos) == 0);

    // The rewritten document has the same images, now with the new alts.
    const auto again = find_images(out, markdown);
    if (debug())
        std::fprintf(stderr, "  rescan: %zu refs (was %zu), %zu -> %zu bytes\n", again.size(), refs.size(),
                     text.size(), out.size());
    CHECK(again.size() == refs.size());
    check_spans(out, markdown, again);
    for (size_t i = 0; i < refs.size(); ++i) {
        const ImageRef &a = again[i];
        CHECK(a.syntax == refs[i].syntax);
        CHECK(a.src == refs[i].src);
        CHECK(a.alt == alts[i]);
        CHECK(a.has_alt && a.md_label.empty());
        size_t lead = refs[i].syntax == ImageSyntax::html && !refs[i].has_alt ? 1 : 0;
        size_t tail = 0;
        if (refs[i].syntax == ImageSyntax::markdown && !refs[i].md_label.empty())
            tail = 2 + refs[i].md_label.size();  // "][label" is not part of the new alt span
        CHECK(a.alt_begin == repl_at[i].first + lead && a.alt_end == repl_at[i].second - tail);
    }
    // Writing the same alts again is a no-op.
    std::vector<AltEdit> same;
    for (size_t i = 0; i < again.size(); ++i) same.push_back({&again[i], alts[i]});
    CHECK(apply_alt_edits(out, same) == out);
}

void check_title(const std::string &text, bool markdown) {
    const std::string t = find_document_title(text, markdown);
    check_clean(t);
    CHECK(t.size() <= text.size());
    if (!markdown) CHECK(t.size() <= 300);
}

void check_link_defs(const std::string &text) {
    const LinkRefs defs = find_link_definitions(text);
    size_t prev = 0;
    for (const auto &[b, e] : defs.spans) {
        CHECK(b >= prev && b < e && e <= text.size() && text[b] == '[');
        prev = e;
    }
    CHECK(defs.dest.size() <= defs.spans.size());
    for (const auto &[label, dest] : defs.dest) {
        CHECK(!label.empty() && label.size() <= 999 * 2);
        CHECK(normalize_link_label(label) == label);
        (void)dest;
    }
}

void check_pure_functions(const std::string &s) {
    const std::string n = normalize_link_label(s);
    CHECK(normalize_link_label(n) == n);
    for (char c : n) CHECK(!(c >= 'A' && c <= 'Z'));
    CHECK(decode_html_entities(s).size() <= s.size());
    const std::string first = first_srcset_url(s);
    CHECK(first.empty() || s.find(first) != std::string::npos);
    CHECK(first.find_first_of(" \t\n\r\f") == std::string::npos);
    CHECK(first.empty() || (first.front() != ',' && first.back() != ','));
    // the same bytes in every URL attribute, one at a time: the choice is a candidate or src
    HtmlImageUrls urls;
    urls.src = "data:image/gif;base64,AA";
    urls.data_srcset = s;
    std::string got = choose_html_image_src(urls);
    CHECK(got == urls.src || got == first_srcset_url(s));
    urls.data_srcset.clear();
    urls.data_src = s;
    got = choose_html_image_src(urls);
    CHECK(got == urls.src || (!got.empty() && s.find(got) != std::string::npos));
    check_clean(clean_generated_alt(s));
    (void)is_weak_alt(s, s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const uint8_t mode = data[0];
    const bool markdown = mode & 1;
    const bool stress = ((mode >> 1) & 3) == 3;
    const size_t rot = (mode >> 3) & 7;
    const bool input_alts = mode & 0x40;
    std::string text(reinterpret_cast<const char *>(data) + 1, size - 1);
    if (stress && !text.empty()) {
        std::string body = text;
        while (text.size() < kStressBytes) text += body;
        text.resize(kStressBytes);
    }

    auto t0 = std::chrono::steady_clock::now();
    const auto refs = find_images(text, markdown);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (stress && secs > kStressSeconds) {
        // once more, so a descheduled process is not taken for a quadratic scan
        t0 = std::chrono::steady_clock::now();
        (void)find_images(text, markdown);
        secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (secs > kStressSeconds)
            std::fprintf(stderr, "fuzz_doc_images: find_images took %.2f s on %zu bytes\n", secs, text.size());
        CHECK(secs <= kStressSeconds);
    }
    if (debug())
        std::fprintf(stderr, "%s %zu bytes: %zu refs in %.4f s\n", markdown ? "md" : "html", text.size(),
                     refs.size(), secs);
    check_spans(text, markdown, refs);

    std::vector<std::string> choices;
    for (const char *a : kRawAlts) choices.push_back(clean_generated_alt(a));
    for (const auto &c : choices) check_clean(c);
    std::vector<std::string> alts;
    for (size_t i = 0; i < refs.size(); ++i) {
        if (input_alts && i % 2 == 1) {
            // text from the document itself, cleaned like a model's answer
            size_t from = (i * 7919) % (text.size() + 1);
            alts.push_back(clean_generated_alt(text.substr(from, 48)));
        } else {
            alts.push_back(choices[(i + rot) % kNumRawAlts]);
        }
        if (debug())
            std::fprintf(stderr, "  ref %zu line %zu %s src='%s' alt='%s' label='%s' -> '%s'\n", i, refs[i].line,
                         refs[i].syntax == ImageSyntax::markdown ? "md" : "html", refs[i].src.c_str(),
                         refs[i].alt.c_str(), refs[i].md_label.c_str(), alts.back().c_str());
        (void)is_weak_alt(refs[i].alt, refs[i].src);
    }
    t0 = std::chrono::steady_clock::now();
    check_edits(text, markdown, refs, alts);
    check_title(text, markdown);
    if (markdown) check_link_defs(text);
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (stress && secs > 4 * kStressSeconds)
        std::fprintf(stderr, "fuzz_doc_images: rewrite/rescan/title took %.2f s on %zu bytes\n", secs, text.size());
    CHECK(!stress || secs <= 4 * kStressSeconds);
    if (!stress) check_pure_functions(text.substr(0, 4096));
    return 0;
}
