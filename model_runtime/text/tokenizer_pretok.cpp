// tokenizer_pretok.cpp: pre-tokenizer steps applied as `tokenizers` applies
// them: each step maps every current piece to sub-pieces, empty pieces are
// dropped, and ByteLevel finally rewrites each piece in the byte alphabet.
// Offsets are not tracked (we only need ids).
#include "text/tokenizer_pretok.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace vlm {

namespace {

enum class Behavior { REMOVED, ISOLATED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS };

// The split `tokenizers` hard-codes for ByteLevel(use_regex=true).
constexpr const char *kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

const char *type_of(const json_t *node) {
    const json_t *t = json_object_get(node, "type");
    return json_is_string(t) ? json_string_value(t) : nullptr;
}

bool bool_field(const json_t *node, const char *key, bool dflt, bool &out, std::string &err) {
    const json_t *v = json_object_get(node, key);
    if (!v || json_is_null(v)) { out = dflt; return true; }
    if (!json_is_boolean(v)) { err = std::string("field '") + key + "' is not a boolean"; return false; }
    out = json_is_true(v);
    return true;
}

struct Segment { size_t begin, end; bool is_match; };

}  // namespace

struct PreTokenizer::Step {
    enum Kind { SPLIT, BYTE_LEVEL } kind = SPLIT;
    std::unique_ptr<TokRegex> regex;   // SPLIT, or BYTE_LEVEL with use_regex
    Behavior behavior = Behavior::ISOLATED;
    bool     invert = false;
    bool     add_prefix_space = false;
};

PreTokenizer::PreTokenizer() = default;
PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer &&) noexcept = default;
PreTokenizer &PreTokenizer::operator=(PreTokenizer &&) noexcept = default;

namespace {

bool parse_behavior(const json_t *v, Behavior &out, std::string &err) {
    if (!json_is_string(v)) { err = "Split 'behavior' is not a string"; return false; }
    const char *s = json_string_value(v);
    static const std::pair<const char *, Behavior> kNames[] = {
        {"Removed", Behavior::REMOVED}, {"Isolated", Behavior::ISOLATED},
        {"MergedWithPrevious", Behavior::MERGED_WITH_PREVIOUS},
        {"MergedWithNext", Behavior::MERGED_WITH_NEXT}, {"Contiguous", Behavior::CONTIGUOUS}};
    for (const auto &[name, b] : kNames)
        if (std::strcmp(s, name) == 0) { out = b; return true; }
    err = std::string("unknown Split behavior '") + s + "'";
    return false;
}

bool parse_step(const json_t *node, std::vector<PreTokenizer::Step> &steps, int depth,
                std::string &err);

bool parse_split(const json_t *node, PreTokenizer::Step &step, std::string &err) {
    step.kind = PreTokenizer::Step::SPLIT;
    const json_t *pattern = json_object_get(node, "pattern");
    if (!json_is_object(pattern)) { err = "Split 'pattern' is not an object"; return false; }
    const json_t *rx = json_object_get(pattern, "Regex");
    const json_t *lit = json_object_get(pattern, "String");
    const json_t *src = rx ? rx : lit;
    if (!json_is_string(src) || (rx && lit)) {
        err = "Split 'pattern' needs exactly one string field 'Regex' or 'String'";
        return false;
    }
    std::string pat(json_string_value(src), json_string_length(src));
    std::string rerr;
    step.regex = TokRegex::compile(pat, lit != nullptr, rerr);
    if (!step.regex) { err = "Split pattern: " + rerr; return false; }
    if (!parse_behavior(json_object_get(node, "behavior"), step.behavior, err)) return false;
    return bool_field(node, "invert", false, step.invert, err);
}

bool parse_byte_level(const json_t *node, PreTokenizer::Step &step, std::string &err) {
    step.kind = PreTokenizer::Step::BYTE_LEVEL;
    bool use_regex = true;
    if (!bool_field(node, "add_prefix_space", true, step.add_prefix_space, err) ||
        !bool_field(node, "use_regex", true, use_regex, err))
        return false;
    if (use_regex) {
        std::string rerr;
        step.regex = TokRegex::compile(kGpt2Pattern, false, rerr);
        if (!step.regex) { err = "ByteLevel regex: " + rerr; return false; }
        step.behavior = Behavior::ISOLATED;
    }
    return true;
}

bool parse_step(const json_t *node, std::vector<PreTokenizer::Step> &steps, int depth,
                std::string &err) {
    if (depth > 8) { err = "pre_tokenizer Sequence nested too deeply"; return false; }
    if (!json_is_object(node)) { err = "pre_tokenizer entry is not an object"; return false; }
    const char *type = type_of(node);
    if (!type) { err = "pre_tokenizer has no string 'type'"; return false; }
    if (std::strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(node, "pretokenizers");
        if (!json_is_array(list)) { err = "Sequence 'pretokenizers' is not an array"; return false; }
        for (size_t i = 0; i < json_array_size(list); ++i)
            if (!parse_step(json_array_get(list, i), steps, depth + 1, err)) return false;
        return true;
    }
    PreTokenizer::Step step;
    if (std::strcmp(type, "Split") == 0) {
        if (!parse_split(node, step, err)) return false;
    } else if (std::strcmp(type, "ByteLevel") == 0) {
        if (!parse_byte_level(node, step, err)) return false;
    } else {
        err = std::string("unsupported pre_tokenizer type '") + type + "'";
        return false;
    }
    steps.push_back(std::move(step));
    return true;
}

// Cuts `text` into alternating matched / unmatched segments covering it.
void find_segments(const TokRegex &re, std::string_view text, bool invert,
                   std::vector<std::pair<size_t, size_t>> &matches, TokMatchData &md,
                   std::vector<Segment> &segs) {
    segs.clear();
    matches.clear();
    re.find_all(text, matches, md);   // on a resource-limit failure the rest stays unmatched
    size_t prev = 0;
    for (const auto &[b, e] : matches) {
        if (prev != b) segs.push_back({prev, b, invert});
        segs.push_back({b, e, !invert});
        prev = e;
    }
    if (prev != text.size()) segs.push_back({prev, text.size(), invert});
}

// Applies a delimiter behavior to segments: the result is the list of pieces
// to keep (Removed drops matched segments).
void apply_behavior(Behavior behavior, const std::vector<Segment> &segs,
                    std::vector<std::pair<size_t, size_t>> &out) {
    out.clear();
    switch (behavior) {
    case Behavior::ISOLATED:
        for (const auto &s : segs) out.emplace_back(s.begin, s.end);
        break;
    case Behavior::REMOVED:
        for (const auto &s : segs)
            if (!s.is_match) out.emplace_back(s.begin, s.end);
        break;
    case Behavior::CONTIGUOUS: {
        bool prev_match = false;
        for (const auto &s : segs) {
            if (s.is_match == prev_match && !out.empty()) out.back().second = s.end;
            else out.emplace_back(s.begin, s.end);
            prev_match = s.is_match;
        }
        break;
    }
    case Behavior::MERGED_WITH_PREVIOUS: {
        bool prev_match = false;
        for (const auto &s : segs) {
            if (s.is_match && !prev_match && !out.empty()) out.back().second = s.end;
            else out.emplace_back(s.begin, s.end);
            prev_match = s.is_match;
        }
        break;
    }
    case Behavior::MERGED_WITH_NEXT: {
        bool prev_match = false;   // "previous" while walking right to left
        for (size_t i = segs.size(); i-- > 0;) {
            const auto &s = segs[i];
            if (s.is_match && !prev_match && !out.empty()) out.back().first = s.begin;
            else out.emplace_back(s.begin, s.end);
            prev_match = s.is_match;
        }
        std::reverse(out.begin(), out.end());
        break;
    }
    }
}

}  // namespace

bool PreTokenizer::parse(const json_t *node, std::string &err) {
    steps_.clear();
    if (!node || json_is_null(node)) return true;
    return parse_step(node, steps_, 0, err);
}

struct PreTokenizer::Scratch {
    struct Level {
        std::string                            prefixed, mapped;
        std::vector<std::pair<size_t, size_t>> matches, keep;
        std::vector<Segment>                   segs;
    };
    std::vector<Level> levels;
    TokMatchData       md;
};

void PreTokenizer::ScratchDeleter::operator()(Scratch *s) const { delete s; }

std::unique_ptr<PreTokenizer::Scratch, PreTokenizer::ScratchDeleter>
PreTokenizer::make_scratch() const {
    std::unique_ptr<Scratch, ScratchDeleter> sc(new Scratch());
    sc->levels.resize(steps_.size());
    return sc;
}

void PreTokenizer::run(std::string_view text, Scratch &scratch, WordSink &sink) const {
    process(0, text, scratch, sink);
}

void PreTokenizer::process(size_t k, std::string_view piece, Scratch &sc, WordSink &sink) const {
    if (piece.empty()) return;
    if (k == steps_.size()) {
        sink.word(piece);
        return;
    }
    const Step &step = steps_[k];
    Scratch::Level &lv = sc.levels[k];
    const bool byte_level = step.kind == Step::BYTE_LEVEL;
    if (byte_level && step.add_prefix_space && piece[0] != ' ') {
        lv.prefixed.assign(1, ' ');
        lv.prefixed.append(piece);
        piece = lv.prefixed;
    }
    lv.keep.clear();
    if (step.regex) {
        find_segments(*step.regex, piece, step.invert, lv.matches, sc.md, lv.segs);
        apply_behavior(step.behavior, lv.segs, lv.keep);
    } else {
        lv.keep.emplace_back(0, piece.size());
    }
    for (size_t i = 0; i < lv.keep.size(); ++i) {   // deeper levels use their own buffers
        const auto [b, e] = lv.keep[i];
        if (e <= b) continue;
        const std::string_view sub = piece.substr(b, e - b);
        if (byte_level) {
            lv.mapped.clear();
            alphabet_.encode(sub, lv.mapped);
            process(k + 1, lv.mapped, sc, sink);
        } else {
            process(k + 1, sub, sc, sink);
        }
    }
}

bool check_normalizer(const json_t *node, std::string &err) {
    if (!node || json_is_null(node)) return true;
    if (!json_is_object(node)) { err = "normalizer is not an object"; return false; }
    const char *type = type_of(node);
    if (!type) { err = "normalizer has no string 'type'"; return false; }
    if (std::strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(node, "normalizers");
        if (json_is_array(list) && json_array_size(list) == 0) return true;
    }
    err = std::string("unsupported normalizer '") + type +
          "' (only no normalizer is supported)";
    return false;
}

}  // namespace vlm
