// tokenizer_pretok.h: the normalizer and pre-tokenizer stages of a
// tokenizer.json, read from the file. Supported pre-tokenizers: Sequence,
// Split (Regex or String pattern, every delimiter behavior, invert) and
// ByteLevel (add_prefix_space, use_regex = the GPT-2 split). Supported
// normalizers: none (null or an empty Sequence). Anything else is a load
// error naming the type, so a file we would tokenize differently is refused.
#pragma once

#include "text/tokenizer_regex.h"
#include "text/tokenizer_utf8.h"

#include <jansson.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vlm {

class PreTokenizer {
public:
    PreTokenizer();
    ~PreTokenizer();
    PreTokenizer(PreTokenizer &&) noexcept;
    PreTokenizer &operator=(PreTokenizer &&) noexcept;

    // `node` is the "pre_tokenizer" value (may be null / JSON null: no split).
    bool parse(const json_t *node, std::string &err);
    // Receives the words of a piece, in order; a view is valid during the call.
    class WordSink {
    public:
        virtual void word(std::string_view w) = 0;
    protected:
        ~WordSink() = default;
    };
    // Buffers reused across calls by one thread (make one per encode call).
    struct Scratch;
    struct ScratchDeleter { void operator()(Scratch *s) const; };
    std::unique_ptr<Scratch, ScratchDeleter> make_scratch() const;

    // Splits one piece of text into words for the model; empty words are
    // dropped, as `tokenizers` does. Words are in the byte-level alphabet when
    // a ByteLevel step ran. Depth-first, which yields the same words in the
    // same order as applying each step to every piece in turn.
    void run(std::string_view text, Scratch &scratch, WordSink &sink) const;

    struct Step;
private:
    void process(size_t step, std::string_view piece, Scratch &scratch, WordSink &sink) const;
    std::vector<Step> steps_;
    utf8::ByteAlphabet alphabet_;
};

// Checks the "normalizer" value; false (with the type named) unless it is
// one we reproduce exactly.
bool check_normalizer(const json_t *node, std::string &err);

}  // namespace vlm
