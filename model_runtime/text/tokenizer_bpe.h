// tokenizer_bpe.h: the BPE "model" of a tokenizer.json: vocab, merges by rank
// (pair ids -> rank and result), ignore_merges, unk (optionally fused), and a
// bounded per-word cache. Words arrive already in the model's alphabet (the
// byte-level text for GPT-2 style files). Not supported (load error):
// dropout > 0, continuing_subword_prefix, end_of_word_suffix, byte_fallback.
#pragma once

#include <jansson.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vlm {

class BpeModel {
public:
    // `model` is the tokenizer.json "model" object (untrusted).
    bool load(const json_t *model, std::string &err);

    void tokenize(std::string_view word, std::vector<int32_t> &ids) const;
    // Id of a vocab entry, or -1.
    int32_t find(std::string_view token) const;
    // Text of a vocab id (empty for ids without an entry).
    std::string_view token_text(int32_t id) const;
    // Number of vocab entries (what `tokenizers` calls the model's size) and
    // one past the largest id.
    size_t entry_count() const { return entry_count_; }
    int32_t id_limit() const { return static_cast<int32_t>(text_begin_.size()); }

private:
    struct Merge { uint64_t key; uint32_t rank; int32_t result; };

    bool load_vocab(const json_t *vocab, std::string &err);
    bool load_merges(const json_t *merges, std::string &err);
    bool add_merge(std::string_view a, std::string_view b, uint32_t rank, std::string &scratch,
                   std::string &err);
    const Merge *find_merge(int32_t left, int32_t right) const;
    int32_t char_id(std::string_view ch, uint32_t cp) const;
    void merge_word(std::string_view word, std::vector<int32_t> &ids) const;

    // Vocab texts live in one arena, indexed by id; `slots_` is an
    // open-addressing table of ids keyed on the text (no per-entry strings,
    // which keeps loading the 151k-entry GLM vocab fast).
    std::string            arena_;
    std::vector<uint32_t>  text_begin_, text_size_;   // by id; size 0 = no entry
    struct Slot { int32_t id; uint32_t tag; };   // tag: high hash bits, skips most compares
    std::vector<Slot>      slots_;
    uint64_t               slot_mask_ = 0;
    size_t                 entry_count_ = 0;
    std::vector<int32_t>                     small_char_id_;   // code point < 512 -> id
    // Open-addressing table keyed on (left id << 32 | right id).
    std::vector<Merge> merge_table_;
    uint64_t           merge_mask_ = 0;
    int32_t            unk_id_ = -1;
    bool               fuse_unk_ = false;
    bool               ignore_merges_ = false;

    // Words seen before; bounded, cleared when full.
    mutable std::mutex                                              cache_mutex_;
    struct TextHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    mutable std::unordered_map<std::string, std::vector<int32_t>, TextHash, std::equal_to<>>
        cache_;
};

}  // namespace vlm
