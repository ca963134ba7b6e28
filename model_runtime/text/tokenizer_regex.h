// tokenizer_regex.h: a compiled PCRE2 pattern with the match-iteration rules
// of the Oniguruma engine that Hugging Face `tokenizers` uses (UTF + Unicode
// properties, Ruby-style multi-line anchors, empty matches never repeat at the
// end of the previous match). Invalid UTF-8 in the subject never matches a
// pattern character but is otherwise carried through.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vlm {

// Reusable match scratch (one per thread of work; any TokRegex can use it).
class TokMatchData {
public:
    TokMatchData();
    ~TokMatchData();
    TokMatchData(const TokMatchData &) = delete;
    TokMatchData &operator=(const TokMatchData &) = delete;
    void *get() const { return md_; }
private:
    void *md_;
};

class TokRegex {
public:
    ~TokRegex();
    // `literal` compiles the pattern as a plain string (Split "String").
    static std::unique_ptr<TokRegex> compile(const std::string &pattern, bool literal,
                                             std::string &err);

    // Byte ranges of successive non-overlapping matches. False when the engine
    // gave up (resource limit); matches found before that are kept.
    bool find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>> &matches,
                  TokMatchData &scratch) const;
    // True when the pattern matches all of `subject` (anchored both ends).
    bool full_match(std::string_view subject) const;

private:
    TokRegex() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace vlm
