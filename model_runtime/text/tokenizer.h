// tokenizer.h: byte-level BPE read from a Hugging Face tokenizer.json. The
// pre-tokenizer (Split regex + ByteLevel, as GLM-4 has) is read from the file
// and run with PCRE2; added/special tokens are matched as whole strings first.
// Ids are identical to the `tokenizers` library's for the same file. A
// tokenizer loaded from a model directory also carries the directory's chat
// template (text/chat_format.h), as transformers' processor does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vlm {

class ChatFormat;

class Tokenizer {
public:
    ~Tokenizer();
    // tokenizer.json is untrusted: a malformed file gives false and a reason.
    static std::unique_ptr<Tokenizer> load(const std::string &path,
                                           std::string &err);
    // A model directory's tokenizer as transformers 5.23's AutoTokenizer
    // loads it: tokenizer.json, then tokenizer_config.json when present
    // (apply_config). special_tokens_map.json is not read (transformers 5.23
    // ignores it when tokenizer_config.json has added_tokens_decoder, as
    // every file it writes does). Then the directory's chat template
    // (ChatFormat::load_dir): a template that fails to load fails this with
    // the file, line and construct; a directory without one gets the
    // built-in format (chat_format()->uses_builtin()).
    static std::unique_ptr<Tokenizer> load_dir(const std::string &dir,
                                               std::string &err);
    // Adds what tokenizer_config.json declares and tokenizer.json lacks, in
    // transformers' order: added_tokens_decoder entries (by id; the id in the
    // file is not kept, new tokens are numbered after the vocabulary), then
    // the special-token attributes bos, eos, unk, sep, pad, cls, mask, then
    // extra_special_tokens (a list, or a dict of name -> token; when missing
    // or empty, the legacy additional_special_tokens, as transformers 5
    // converts it). Tokens already present keep their id and flags. Records
    // eos_token.
    bool apply_config(const std::string &path, std::string &err);

    // Encodes text without adding BOS or template tokens. Special-token text
    // inside `text` becomes the special token when `parse_special` (prompt
    // template), and ordinary bytes otherwise (user input).
    std::vector<int32_t> encode(const std::string &text, bool parse_special) const;
    // Id of an added/special token's exact text, or -1.
    int32_t token_id(const std::string &token_text) const;
    // The raw bytes of one token (special tokens give their text).
    std::string token_bytes(int32_t id) const;
    bool is_special(int32_t id) const;
    int32_t vocab_size() const;
    // tokenizer_config.json's eos_token as an id, or -1.
    int32_t eos_token_id() const;
    // tokenizer.json's post_processor applied to one sequence: the ids it
    // adds around `ids` (what add_special_tokens=True adds; nothing for
    // GLM's files). TemplateProcessing, Bert/RobertaProcessing, ByteLevel and
    // Sequence are read; another type fails load().
    void apply_post_processor(std::vector<int32_t> &ids) const;

    // The chat format prompts are rendered with: set by load_dir (the
    // directory's template, or the built-in GLM format); null for a tokenizer
    // from load(), whose prompts use the built-in format (text/chat_prompt.h).
    const ChatFormat *chat_format() const;
    void set_chat_format(std::shared_ptr<const ChatFormat> format);

private:
    Tokenizer();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Streams decoded text token by token: bytes of a UTF-8 sequence split across
// tokens are held back until complete, so every returned piece is valid UTF-8.
class TokenStreamDecoder {
public:
    explicit TokenStreamDecoder(const Tokenizer &tok, bool skip_special = true);
    std::string push(int32_t id);   // the newly completed text (may be empty)
    std::string finish();           // leftover bytes, invalid ones as U+FFFD
private:
    const Tokenizer &tok_;
    bool             skip_special_;
    std::string      pending_;
};

}  // namespace vlm
