// tokenizer_bpe.cpp: loads and runs the BPE model. Merging follows
// `tokenizers`: a priority queue of adjacent pairs ordered by (rank, position);
// stale entries are skipped when the pair under them has changed.
#include "text/tokenizer_bpe.h"

#include "text/tokenizer_utf8.h"
#include "util/hash.h"

#include <cstring>
#include <queue>

namespace vlm {

namespace {

// Sparse ids are allowed but bounded so a hostile file cannot make us
// allocate a huge id table.
constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;
constexpr size_t  kCacheMaxEntries = 65536;
constexpr size_t  kCacheMaxWordBytes = 256;
constexpr uint64_t kEmptyKey = ~uint64_t{0};

uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

std::string_view json_sv(const json_t *s) {
    return {json_string_value(s), json_string_length(s)};
}

}  // namespace

bool BpeModel::load_vocab(const json_t *vocab, std::string &err) {
    if (!json_is_object(vocab)) { err = "model.vocab is not an object"; return false; }
    std::vector<std::pair<std::string_view, int32_t>> entries;
    entries.reserve(json_object_size(vocab));
    int64_t max_id = -1;
    const char *key;
    const json_t *value;
    json_object_foreach(const_cast<json_t *>(vocab), key, value) {
        if (!json_is_integer(value)) {
            err = std::string("model.vocab entry '") + key + "' has a non-integer id";
            return false;
        }
        const json_int_t id = json_integer_value(value);
        if (id < 0 || id > kMaxTokenId) {
            err = std::string("model.vocab entry '") + key + "' has id " + std::to_string(id) +
                  " out of range";
            return false;
        }
        entries.emplace_back(key, static_cast<int32_t>(id));
        if (id > max_id) max_id = id;
    }
    // Dense in practice; allow some holes but not an id far past the count.
    if (max_id >= static_cast<int64_t>(2 * entries.size() + 1024)) {
        err = "model.vocab id " + std::to_string(max_id) + " is far beyond the " +
              std::to_string(entries.size()) + " entries";
        return false;
    }
    entry_count_ = entries.size();
    const auto n_ids = static_cast<size_t>(max_id + 1);
    text_begin_.assign(n_ids, 0);
    text_size_.assign(n_ids, 0);
    std::vector<bool> seen(n_ids, false);
    size_t total = 0;
    for (const auto &[text, id] : entries) total += text.size();
    if (total > (size_t{1} << 31)) { err = "model.vocab texts are too large"; return false; }
    arena_.reserve(total);
    for (const auto &[text, id] : entries) {
        const auto i = static_cast<size_t>(id);
        if (seen[i]) {
            err = "model.vocab id " + std::to_string(id) + " is used by two tokens";
            return false;
        }
        seen[i] = true;
        text_begin_[i] = static_cast<uint32_t>(arena_.size());
        text_size_[i] = static_cast<uint32_t>(text.size());
        arena_.append(text);
    }
    size_t cap = 16;
    while (cap < 2 * entries.size()) cap <<= 1;
    slots_.assign(cap, Slot{-1, 0});
    slot_mask_ = cap - 1;
    for (const auto &[text, id] : entries) {
        // Keys of a JSON object are unique, so every text gets a fresh slot.
        const uint64_t h = std::hash<std::string_view>{}(text);
        uint64_t i = h & slot_mask_;
        while (slots_[i].id >= 0) i = (i + 1) & slot_mask_;
        slots_[i] = {id, static_cast<uint32_t>(h >> 32)};
    }
    small_char_id_.assign(512, -1);
    for (const auto &[text, id] : entries) {
        if (text.empty() || text.size() > 2) continue;
        const utf8::ScanResult r = utf8::scan(text, 0);
        if (r.kind == utf8::Scan::VALID && r.length == text.size() && r.codepoint < 512)
            small_char_id_[r.codepoint] = id;
    }
    return true;
}

const BpeModel::Merge *BpeModel::find_merge(int32_t left, int32_t right) const {
    if (merge_table_.empty()) return nullptr;
    const uint64_t key = pair_key(left, right);
    for (uint64_t i = mix64(key) & merge_mask_;; i = (i + 1) & merge_mask_) {
        const Merge &m = merge_table_[i];
        if (m.key == key) return &m;
        if (m.key == kEmptyKey) return nullptr;
    }
}

bool BpeModel::add_merge(std::string_view a, std::string_view b, uint32_t rank,
                         std::string &joined, std::string &err) {
    const int32_t ia = find(a), ib = find(b);
    joined.assign(a).append(b);
    const int32_t ir = find(joined);
    if (ia < 0 || ib < 0 || ir < 0) {
        const std::string missing(ia < 0 ? a : ib < 0 ? b : std::string_view(joined));
        err = "merge " + std::to_string(rank) + " uses token '" + missing +
              "' that is not in the vocab";
        return false;
    }
    const uint64_t key = pair_key(ia, ib);
    for (uint64_t i = mix64(key) & merge_mask_;; i = (i + 1) & merge_mask_) {
        Merge &m = merge_table_[i];
        if (m.key == kEmptyKey || m.key == key) {   // a repeated pair keeps the later rank
            m = {key, rank, ir};
            return true;
        }
    }
}

bool BpeModel::load_merges(const json_t *merges, std::string &err) {
    if (!json_is_array(merges)) { err = "model.merges is not an array"; return false; }
    const size_t n = json_array_size(merges);
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    merge_table_.assign(cap, Merge{kEmptyKey, 0, -1});
    merge_mask_ = cap - 1;
    uint32_t rank = 0;
    std::string scratch;
    for (size_t i = 0; i < n; ++i) {
        const json_t *m = json_array_get(merges, i);
        std::string_view a, b;
        if (json_is_string(m)) {
            // Legacy "a b" form: exactly one space; "#version" header lines
            // are skipped without taking a rank.
            const std::string_view line = json_sv(m);
            if (line.substr(0, 8) == "#version") continue;
            const size_t sp = line.find(' ');
            if (sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos) {
                err = "merge " + std::to_string(i) + " is not two tokens separated by one space";
                return false;
            }
            a = line.substr(0, sp);
            b = line.substr(sp + 1);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_sv(json_array_get(m, 0));
            b = json_sv(json_array_get(m, 1));
        } else {
            err = "merge " + std::to_string(i) + " is neither \"a b\" nor [a, b]";
            return false;
        }
        if (!add_merge(a, b, rank, scratch, err)) return false;
        ++rank;
    }
    return true;
}

bool BpeModel::load(const json_t *model, std::string &err) {
    if (!json_is_object(model)) { err = "'model' is missing or not an object"; return false; }
    const json_t *type = json_object_get(model, "type");
    if (type && !(json_is_string(type) && std::strcmp(json_string_value(type), "BPE") == 0)) {
        err = std::string("unsupported model type '") +
              (json_is_string(type) ? json_string_value(type) : "?") + "' (only BPE)";
        return false;
    }
    for (const char *key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        const json_t *v = json_object_get(model, key);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0)) {
            err = std::string("model.") + key + " is not supported";
            return false;
        }
    }
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) &&
        !(json_is_number(dropout) && json_number_value(dropout) == 0.0)) {
        err = "model.dropout is not supported (inference needs deterministic ids)";
        return false;
    }
    const json_t *byte_fallback = json_object_get(model, "byte_fallback");
    if (json_is_true(byte_fallback)) { err = "model.byte_fallback is not supported"; return false; }
    const json_t *ignore = json_object_get(model, "ignore_merges");
    const json_t *fuse = json_object_get(model, "fuse_unk");
    if ((ignore && !json_is_boolean(ignore) && !json_is_null(ignore)) ||
        (fuse && !json_is_boolean(fuse) && !json_is_null(fuse))) {
        err = "model.ignore_merges / fuse_unk is not a boolean";
        return false;
    }
    ignore_merges_ = json_is_true(ignore);
    fuse_unk_ = json_is_true(fuse);

    if (!load_vocab(json_object_get(model, "vocab"), err)) return false;
    const json_t *unk = json_object_get(model, "unk_token");
    if (unk && !json_is_null(unk)) {
        if (!json_is_string(unk)) { err = "model.unk_token is not a string"; return false; }
        unk_id_ = find(json_sv(unk));
        if (unk_id_ < 0) { err = "model.unk_token is not in the vocab"; return false; }
    }
    return load_merges(json_object_get(model, "merges"), err);
}

int32_t BpeModel::find(std::string_view token) const {
    if (slots_.empty()) return -1;
    const uint64_t h = std::hash<std::string_view>{}(token);
    const auto tag = static_cast<uint32_t>(h >> 32);
    for (uint64_t i = h & slot_mask_;; i = (i + 1) & slot_mask_) {
        const Slot &s = slots_[i];
        if (s.id < 0) return -1;
        if (s.tag == tag && token_text(s.id) == token) return s.id;
    }
}

std::string_view BpeModel::token_text(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= text_begin_.size()) return {};
    const auto i = static_cast<size_t>(id);
    return std::string_view(arena_).substr(text_begin_[i], text_size_[i]);
}

int32_t BpeModel::char_id(std::string_view ch, uint32_t cp) const {
    if (cp < 512) return small_char_id_[cp];
    return find(ch);
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t> &ids) const {
    struct Symbol { int32_t id; int32_t prev, next; bool alive; };
    std::vector<Symbol> syms;
    syms.reserve(word.size());
    auto push_symbol = [&](int32_t id) {
        const auto pos = static_cast<int32_t>(syms.size());
        syms.push_back({id, pos - 1, -1, true});
        if (pos > 0) syms[static_cast<size_t>(pos) - 1].next = pos;
    };
    bool pending_unk = false;
    for (size_t i = 0; i < word.size();) {
        const utf8::ScanResult r = utf8::scan(word, i);
        const size_t len = r.length;   // stray bytes count as one unknown char
        const int32_t id = r.kind == utf8::Scan::VALID ? char_id(word.substr(i, len), r.codepoint)
                                                       : -1;
        i += len;
        if (id >= 0) {
            if (pending_unk) { push_symbol(unk_id_); pending_unk = false; }
            push_symbol(id);
        } else if (unk_id_ >= 0) {
            if (pending_unk && !fuse_unk_) push_symbol(unk_id_);
            pending_unk = true;
        }   // no unk token: the character is dropped, as `tokenizers` does
    }
    if (pending_unk) push_symbol(unk_id_);

    struct Candidate { uint32_t rank; int32_t pos; int32_t result; };
    auto lower_priority = [](const Candidate &a, const Candidate &b) {
        return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
    };
    std::priority_queue<Candidate, std::vector<Candidate>, decltype(lower_priority)> queue(
        lower_priority);
    for (size_t i = 0; i + 1 < syms.size(); ++i)
        if (const Merge *m = find_merge(syms[i].id, syms[i + 1].id))
            queue.push({m->rank, static_cast<int32_t>(i), m->result});

    while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol &left = syms[static_cast<size_t>(top.pos)];
        if (!left.alive || left.next < 0) continue;
        Symbol &right = syms[static_cast<size_t>(left.next)];
        const Merge *current = find_merge(left.id, right.id);
        if (!current || current->result != top.result) continue;   // stale entry
        left.id = top.result;
        left.next = right.next;
        right.alive = false;
        if (left.next >= 0) syms[static_cast<size_t>(left.next)].prev = top.pos;
        if (left.prev >= 0)
            if (const Merge *m = find_merge(syms[static_cast<size_t>(left.prev)].id, left.id))
                queue.push({m->rank, left.prev, m->result});
        if (left.next >= 0)
            if (const Merge *m = find_merge(left.id, syms[static_cast<size_t>(left.next)].id))
                queue.push({m->rank, top.pos, m->result});
    }
    for (const Symbol &s : syms)
        if (s.alive) ids.push_back(s.id);
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t> &ids) const {
    if (word.empty()) return;
    if (ignore_merges_) {
        const int32_t whole = find(word);
        if (whole >= 0) { ids.push_back(whole); return; }
    }
    const bool cacheable = word.size() < kCacheMaxWordBytes;
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        const auto it = cache_.find(word);
        if (it != cache_.end()) {
            ids.insert(ids.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const size_t first = ids.size();
    merge_word(word, ids);
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        if (cache_.size() >= kCacheMaxEntries) cache_.clear();
        cache_.emplace(std::string(word),
                       std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end()));
    }
}

}  // namespace vlm
