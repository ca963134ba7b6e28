// tokenizer.cpp: loads a Hugging Face tokenizer.json (untrusted) and encodes
// text the way `tokenizers` does: added tokens are cut out first (leftmost-
// longest over the tokens' text, honouring single_word / lstrip / rstrip),
// the rest goes through the pre-tokenizer and the BPE model. Decoding maps
// byte-level text back to bytes. The post-processor is read (the ids it adds
// around one sequence: apply_post_processor); truncation, padding and offsets
// are not done here.
#include "text/tokenizer.h"

#include "text/chat_format.h"
#include "text/tokenizer_bpe.h"
#include "text/tokenizer_pretok.h"
#include "text/tokenizer_regex.h"
#include "text/tokenizer_utf8.h"

#include <jansson.h>

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

namespace vlm {

namespace {

struct AddedToken {
    std::string content;
    bool single_word = false, lstrip = false, rstrip = false;
    bool normalized = true, special = false;
    bool operator==(const AddedToken &) const = default;
};

struct Piece {
    size_t  begin, end;
    int32_t id;   // added token id, or -1 for text still to tokenize
};

// Unicode White_Space, what `\s` means in the Rust regex crate.
bool is_white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

// Start of the character that ends at `end` (a stray byte counts as one).
size_t last_char_start(std::string_view s, size_t end) {
    size_t b = end;
    while (b > 0 && end - b < 4) {
        --b;
        if ((static_cast<uint8_t>(s[b]) & 0xC0) != 0x80) break;
    }
    const utf8::ScanResult r = utf8::scan(s, b);
    return (r.kind == utf8::Scan::VALID && b + r.length == end) ? b : end - 1;
}

}  // namespace

struct Tokenizer::Impl {
    BpeModel           model;
    PreTokenizer       pre;
    utf8::ByteAlphabet alphabet;
    bool               byte_level_decoder = false;

    std::unordered_map<std::string, int32_t> added_by_content;
    std::unordered_map<int32_t, AddedToken>  added_by_id;
    std::unordered_set<std::string>          special_contents;
    // Candidate added-token ids by first byte, longest first; one table for
    // tokens matched on raw text and one for "normalized" tokens (matched
    // after the normalizer, which is always the identity here).
    std::array<std::vector<int32_t>, 256> raw_by_first, normalized_by_first;

    std::vector<std::string> bytes_by_id;
    std::vector<uint8_t>     special_by_id;
    std::unique_ptr<TokRegex> word_char;   // Rust regex `\w`

    int32_t            eos_id = -1;
    // What the post_processor puts around one sequence (add_special_tokens).
    std::vector<int32_t> post_prefix, post_suffix;
    std::shared_ptr<const ChatFormat> chat_format;

    bool load_added(const json_t *list, std::string &err);
    bool load_post_processor(const json_t *node, std::string &err);
    bool add_token(AddedToken tok, std::string &err);
    bool load_decoder(const json_t *node, std::string &err);
    void build_tables();

    bool is_word_char_before(std::string_view s, size_t pos) const;
    bool is_word_char_at(std::string_view s, size_t pos) const;
    void split_added(std::string_view text, size_t base,
                     const std::array<std::vector<int32_t>, 256> &table, bool parse_special,
                     std::vector<Piece> &out) const;
};

bool Tokenizer::Impl::load_added(const json_t *list, std::string &err) {
    if (!list || json_is_null(list)) return true;
    if (!json_is_array(list)) { err = "'added_tokens' is not an array"; return false; }
    // Ids follow `tokenizers`: a token already in the vocab keeps that id,
    // new ones are numbered after the model's vocab (the file's "id" is only
    // checked for range there too).
    int32_t next_id = static_cast<int32_t>(model.entry_count());
    for (size_t i = 0; i < json_array_size(list); ++i) {
        const json_t *t = json_array_get(list, i);
        const std::string where = "added_tokens[" + std::to_string(i) + "]";
        if (!json_is_object(t)) { err = where + " is not an object"; return false; }
        const json_t *content = json_object_get(t, "content");
        const json_t *id = json_object_get(t, "id");
        if (!json_is_string(content)) { err = where + ".content is not a string"; return false; }
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= (json_int_t{1} << 24)) {
            err = where + ".id is not an integer in range";
            return false;
        }
        AddedToken tok;
        tok.content.assign(json_string_value(content), json_string_length(content));
        const std::pair<const char *, bool *> flags[] = {
            {"single_word", &tok.single_word}, {"lstrip", &tok.lstrip}, {"rstrip", &tok.rstrip},
            {"normalized", &tok.normalized},   {"special", &tok.special}};
        for (const auto &[name, dst] : flags) {
            const json_t *v = json_object_get(t, name);
            if (!v) continue;
            if (!json_is_boolean(v)) { err = where + "." + name + " is not a boolean"; return false; }
            *dst = json_is_true(v);
        }
        if (tok.content.empty()) continue;
        int32_t assigned;
        const auto known = added_by_content.find(tok.content);
        if (known != added_by_content.end()) {
            if (added_by_id[known->second] == tok) continue;
            assigned = known->second;
        } else if ((assigned = model.find(tok.content)) < 0) {
            assigned = next_id++;
        }
        if (assigned >= (int32_t{1} << 24)) { err = where + " gets an id out of range"; return false; }
        added_by_content[tok.content] = assigned;
        if (tok.special) special_contents.insert(tok.content);
        added_by_id[assigned] = std::move(tok);
    }
    return true;
}

bool Tokenizer::Impl::load_decoder(const json_t *node, std::string &err) {
    if (!node || json_is_null(node)) { byte_level_decoder = false; return true; }
    const json_t *type = json_is_object(node) ? json_object_get(node, "type") : nullptr;
    if (!json_is_string(type)) { err = "decoder has no string 'type'"; return false; }
    const std::string t = json_string_value(type);
    if (t == "ByteLevel") { byte_level_decoder = true; return true; }
    if (t == "Sequence") {
        const json_t *list = json_object_get(node, "decoders");
        if (json_is_array(list) && json_array_size(list) == 1)
            return load_decoder(json_array_get(list, 0), err);
    }
    err = "unsupported decoder '" + t + "' (only ByteLevel)";
    return false;
}

// tokenizer.json's post_processor, for one sequence: the ids it adds before
// and after it. Processors nest (Sequence), each wrapping what the previous
// one produced.
bool Tokenizer::Impl::load_post_processor(const json_t *node, std::string &err) {
    if (!node || json_is_null(node)) return true;
    const json_t *type = json_is_object(node) ? json_object_get(node, "type") : nullptr;
    if (!json_is_string(type)) { err = "post_processor has no string 'type'"; return false; }
    const std::string t = json_string_value(type);
    auto id_of = [&](const json_t *pair, const char *what, int32_t &id) {   // ["[CLS]", 101]
        const json_t *v = json_array_get(pair, 1);
        if (!json_is_array(pair) || json_array_size(pair) != 2 || !json_is_integer(v) ||
            json_integer_value(v) < 0 || json_integer_value(v) >= (json_int_t{1} << 24)) {
            err = "post_processor " + t + ": '" + what + "' is not a [token, id] pair";
            return false;
        }
        id = static_cast<int32_t>(json_integer_value(v));
        return true;
    };
    if (t == "ByteLevel") return true;   // offsets only
    if (t == "Sequence") {
        const json_t *list = json_object_get(node, "processors");
        if (!json_is_array(list)) { err = "post_processor Sequence has no 'processors' array"; return false; }
        for (size_t i = 0; i < json_array_size(list); ++i)
            if (!load_post_processor(json_array_get(list, i), err)) return false;
        return true;
    }
    if (t == "BertProcessing" || t == "RobertaProcessing") {   // single: cls A sep
        int32_t cls, sep;
        if (!id_of(json_object_get(node, "cls"), "cls", cls) || !id_of(json_object_get(node, "sep"), "sep", sep))
            return false;
        post_prefix.insert(post_prefix.begin(), cls);
        post_suffix.push_back(sep);
        return true;
    }
    if (t == "TemplateProcessing") {
        const json_t *single = json_object_get(node, "single");
        const json_t *specials = json_object_get(node, "special_tokens");
        if (!json_is_array(single)) { err = "post_processor TemplateProcessing has no 'single' list"; return false; }
        std::vector<int32_t> before, after;
        bool seen_sequence = false;
        for (size_t i = 0; i < json_array_size(single); ++i) {
            const json_t *piece = json_array_get(single, i);
            const json_t *seq = json_object_get(piece, "Sequence");
            const json_t *special = json_object_get(piece, "SpecialToken");
            if (json_is_object(seq)) {
                const json_t *sid = json_object_get(seq, "id");
                if (seen_sequence || !json_is_string(sid) || std::strcmp(json_string_value(sid), "A") != 0) {
                    err = "post_processor TemplateProcessing: 'single' must hold sequence A once";
                    return false;
                }
                seen_sequence = true;
                continue;
            }
            const json_t *name = json_object_get(special, "id");
            const json_t *entry = json_is_string(name) ? json_object_get(specials, json_string_value(name)) : nullptr;
            const json_t *ids = json_object_get(entry, "ids");
            if (!json_is_array(ids)) {
                err = "post_processor TemplateProcessing: 'single'[" + std::to_string(i) +
                      "] is neither a sequence nor a special token listed in 'special_tokens'";
                return false;
            }
            for (size_t k = 0; k < json_array_size(ids); ++k) {
                const json_t *v = json_array_get(ids, k);
                if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (json_int_t{1} << 24)) {
                    err = "post_processor TemplateProcessing: special token ids out of range";
                    return false;
                }
                (seen_sequence ? after : before).push_back(static_cast<int32_t>(json_integer_value(v)));
            }
        }
        if (!seen_sequence) { err = "post_processor TemplateProcessing: 'single' has no sequence A"; return false; }
        post_prefix.insert(post_prefix.begin(), before.begin(), before.end());
        post_suffix.insert(post_suffix.end(), after.begin(), after.end());
        return true;
    }
    err = "unsupported post_processor '" + t + "' (TemplateProcessing, BertProcessing, RobertaProcessing, "
          "ByteLevel and Sequence of these are)";
    return false;
}

// One token from tokenizer_config.json: kept as it is when its text is known
// already, else added (with its vocab id when the BPE has the text, as
// `tokenizers` does, else the next free id).
bool Tokenizer::Impl::add_token(AddedToken tok, std::string &err) {
    if (tok.content.empty() || added_by_content.count(tok.content)) return true;
    int32_t id = model.find(tok.content);
    if (id < 0) {
        id = model.id_limit();
        for (const auto &[known, t] : added_by_id) id = std::max(id, known + 1);
    }
    if (id >= (int32_t{1} << 24)) { err = "token \"" + tok.content + "\" gets an id out of range"; return false; }
    added_by_content[tok.content] = id;
    if (tok.special) special_contents.insert(tok.content);
    added_by_id[id] = std::move(tok);
    return true;
}

void Tokenizer::Impl::build_tables() {
    for (auto *table : {&raw_by_first, &normalized_by_first})
        for (auto &bucket : *table) bucket.clear();
    int32_t limit = model.id_limit();
    for (const auto &[id, tok] : added_by_id) limit = std::max(limit, id + 1);
    bytes_by_id.assign(static_cast<size_t>(limit), std::string());
    special_by_id.assign(static_cast<size_t>(limit), 0);
    for (int32_t id = 0; id < limit; ++id) {
        const auto added = added_by_id.find(id);
        const std::string_view text =
            added != added_by_id.end() ? std::string_view(added->second.content) : model.token_text(id);
        std::string &out = bytes_by_id[static_cast<size_t>(id)];
        if (added != added_by_id.end() && special_contents.count(added->second.content)) {
            out = text;   // special tokens decode to their literal text
            special_by_id[static_cast<size_t>(id)] = 1;
        } else if (!byte_level_decoder || !alphabet.decode(text, out)) {
            out = text;   // as the ByteLevel decoder: unmappable tokens stay verbatim
        }
    }
    for (const auto &[id, tok] : added_by_id) {
        auto &table = tok.normalized ? normalized_by_first : raw_by_first;
        table[static_cast<uint8_t>(tok.content[0])].push_back(id);
    }
    for (auto *table : {&raw_by_first, &normalized_by_first})
        for (auto &bucket : *table)
            std::sort(bucket.begin(), bucket.end(), [&](int32_t a, int32_t b) {
                const size_t la = added_by_id[a].content.size(), lb = added_by_id[b].content.size();
                return la != lb ? la > lb : a < b;
            });
}

bool Tokenizer::Impl::is_word_char_before(std::string_view s, size_t pos) const {
    if (pos == 0) return false;
    const size_t b = last_char_start(s, pos);
    return word_char->full_match(s.substr(b, pos - b));
}

bool Tokenizer::Impl::is_word_char_at(std::string_view s, size_t pos) const {
    if (pos >= s.size()) return false;
    return word_char->full_match(s.substr(pos, utf8::scan(s, pos).length));
}

void Tokenizer::Impl::split_added(std::string_view text, size_t base,
                                  const std::array<std::vector<int32_t>, 256> &table,
                                  bool parse_special, std::vector<Piece> &out) const {
    size_t start_offset = 0;   // end of the last emitted added token
    size_t pos = 0;            // where the leftmost-longest search resumes
    while (pos < text.size()) {
        const auto &bucket = table[static_cast<uint8_t>(text[pos])];
        int32_t hit = -1;
        for (int32_t id : bucket) {
            const std::string &c = added_by_id.at(id).content;
            if (text.compare(pos, c.size(), c) == 0) { hit = id; break; }
        }
        if (hit < 0) { ++pos; continue; }
        const AddedToken &tok = added_by_id.at(hit);
        size_t start = pos, stop = pos + tok.content.size();
        pos = stop;   // matches never overlap, even when this one is skipped
        if (!parse_special && special_contents.count(tok.content)) continue;
        if (tok.single_word &&
            (is_word_char_before(text, start) || is_word_char_at(text, stop)))
            continue;
        if (tok.lstrip) {
            size_t s = start;
            while (s > start_offset) {
                const size_t b = last_char_start(text, s);
                const utf8::ScanResult r = utf8::scan(text, b);
                if (r.kind != utf8::Scan::VALID || !is_white_space(r.codepoint)) break;
                s = b;
            }
            start = s;
        }
        if (tok.rstrip) {
            while (stop < text.size()) {
                const utf8::ScanResult r = utf8::scan(text, stop);
                if (r.kind != utf8::Scan::VALID || !is_white_space(r.codepoint)) break;
                stop += r.length;
            }
            pos = stop;
        }
        if (start_offset < start) out.push_back({base + start_offset, base + start, -1});
        out.push_back({base + start, base + stop, hit});
        start_offset = stop;
    }
    if (start_offset < text.size()) out.push_back({base + start_offset, base + text.size(), -1});
}

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

namespace {

// Whole-file read: jansson's own file reader goes through getc and is several
// times slower on the 20 MB GLM file.
bool read_file(const std::string &path, std::string &out, std::string &err) {
    constexpr long kMaxBytes = 512L << 20;
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) { err = path + ": cannot open: " + std::strerror(errno); return false; }
    bool ok = std::fseek(f, 0, SEEK_END) == 0;
    const long size = ok ? std::ftell(f) : -1;
    ok = ok && size >= 0 && size <= kMaxBytes && std::fseek(f, 0, SEEK_SET) == 0;
    if (ok) {
        out.resize(static_cast<size_t>(size));
        ok = std::fread(out.data(), 1, out.size(), f) == out.size();
    }
    std::fclose(f);
    if (!ok) err = path + (size > kMaxBytes ? ": file is too large" : ": read error");
    return ok;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string &path, std::string &err) {
    std::string bytes;
    if (!read_file(path, bytes, err)) return nullptr;
    json_error_t jerr;
    json_t *root = json_loadb(bytes.data(), bytes.size(), 0, &jerr);
    bytes = std::string();
    if (!root) {
        err = path + ": invalid JSON: " + jerr.text + " (line " + std::to_string(jerr.line) +
              ", column " + std::to_string(jerr.column) + ")";
        return nullptr;
    }
    std::unique_ptr<Tokenizer> tok(new Tokenizer());
    Impl &im = *tok->impl_;
    std::string why;
    std::string rerr;
    bool ok = json_is_object(root);
    if (!ok) why = "top level is not an object";
    ok = ok && check_normalizer(json_object_get(root, "normalizer"), why);
    ok = ok && im.pre.parse(json_object_get(root, "pre_tokenizer"), why);
    ok = ok && im.model.load(json_object_get(root, "model"), why);
    ok = ok && im.load_added(json_object_get(root, "added_tokens"), why);
    ok = ok && im.load_decoder(json_object_get(root, "decoder"), why);
    ok = ok && im.load_post_processor(json_object_get(root, "post_processor"), why);
    if (ok) {
        im.word_char = TokRegex::compile("[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]",
                                         false, rerr);
        if (!im.word_char) { why = "internal regex: " + rerr; ok = false; }
    }
    json_decref(root);
    if (!ok) {
        err = path + ": " + why;
        return nullptr;
    }
    im.build_tables();
    for (const auto *list : {&im.post_prefix, &im.post_suffix})
        for (int32_t id : *list)
            if (static_cast<size_t>(id) >= im.bytes_by_id.size()) {
                err = path + ": post_processor adds id " + std::to_string(id) + ", outside the vocabulary";
                return nullptr;
            }
    return tok;
}

namespace {

// A special-token value: a string, or {"content": "..."} (older files).
const char *token_text(const json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v) && json_is_string(json_object_get(v, "content")))
        return json_string_value(json_object_get(v, "content"));
    return nullptr;
}

}  // namespace

bool Tokenizer::apply_config(const std::string &path, std::string &err) {
    std::string bytes;
    if (!read_file(path, bytes, err)) return false;
    json_error_t jerr;
    json_t *root = json_loadb(bytes.data(), bytes.size(), 0, &jerr);
    if (!root) {
        err = path + ": invalid JSON: " + jerr.text + " (line " + std::to_string(jerr.line) + ")";
        return false;
    }
    Impl &im = *impl_;
    std::string why;
    bool ok = json_is_object(root);
    if (!ok) why = "top level is not an object";

    const json_t *decoder = ok ? json_object_get(root, "added_tokens_decoder") : nullptr;
    if (ok && decoder && !json_is_null(decoder)) {
        std::vector<std::pair<long, const json_t *>> entries;
        const char *key;
        json_t *v;
        json_object_foreach(const_cast<json_t *>(decoder), key, v) {
            char *end = nullptr;
            const long id = std::strtol(key, &end, 10);
            if (!json_is_object(v) || end == key || *end != '\0' || id < 0) {
                why = std::string("added_tokens_decoder[\"") + key + "\"] is not an id with a token object";
                ok = false;
                break;
            }
            entries.emplace_back(id, v);
        }
        std::sort(entries.begin(), entries.end(),
                  [](const auto &a, const auto &b) { return a.first < b.first; });
        for (size_t i = 0; ok && i < entries.size(); ++i) {
            const json_t *t = entries[i].second;
            const char *content = token_text(t);
            if (!content) { why = "added_tokens_decoder entry without \"content\""; ok = false; break; }
            AddedToken tok;
            tok.content = content;
            tok.special = json_is_true(json_object_get(t, "special"));
            tok.normalized = !tok.special;
            const std::pair<const char *, bool *> flags[] = {
                {"single_word", &tok.single_word}, {"lstrip", &tok.lstrip}, {"rstrip", &tok.rstrip},
                {"normalized", &tok.normalized}};
            for (const auto &[name, dst] : flags)
                if (json_is_boolean(json_object_get(t, name))) *dst = json_is_true(json_object_get(t, name));
            ok = im.add_token(std::move(tok), why);
        }
    }
    auto add_special = [&](const char *text) {
        AddedToken tok;
        tok.content = text;
        tok.special = true;
        tok.normalized = false;
        return im.add_token(std::move(tok), why);
    };
    for (const char *attr : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                             "cls_token", "mask_token"}) {
        if (!ok) break;
        if (const char *text = token_text(json_object_get(root, attr))) ok = add_special(text);
    }
    const json_t *extra = ok ? json_object_get(root, "extra_special_tokens") : nullptr;
    // transformers 5 reads the legacy additional_special_tokens in its place
    // when extra_special_tokens is missing or empty.
    if (ok && (!extra || json_is_null(extra) || (json_is_array(extra) && json_array_size(extra) == 0) ||
               (json_is_object(extra) && json_object_size(extra) == 0)))
        extra = json_object_get(root, "additional_special_tokens");
    if (ok && json_is_array(extra)) {
        for (size_t i = 0; ok && i < json_array_size(extra); ++i)
            if (const char *text = token_text(json_array_get(extra, i))) ok = add_special(text);
    } else if (ok && json_is_object(extra)) {
        const char *key;
        json_t *v;
        json_object_foreach(const_cast<json_t *>(extra), key, v) {
            const char *text = token_text(v);
            if (ok && text) ok = add_special(text);
        }
    }
    if (ok) {
        const char *eos = token_text(json_object_get(root, "eos_token"));
        im.eos_id = eos ? token_id(eos) : -1;
        im.build_tables();
    }
    json_decref(root);
    if (!ok) err = path + ": " + why;
    return ok;
}

std::unique_ptr<Tokenizer> Tokenizer::load_dir(const std::string &dir, std::string &err) {
    std::unique_ptr<Tokenizer> tok = load(dir + "/tokenizer.json", err);
    if (!tok) return nullptr;
    const std::string cfg = dir + "/tokenizer_config.json";
    struct stat st;
    const bool has_config = !(::stat(cfg.c_str(), &st) != 0 && errno == ENOENT);   // optional, as for transformers
    if (has_config && !tok->apply_config(cfg, err)) return nullptr;
    std::unique_ptr<ChatFormat> fmt = ChatFormat::load_dir(dir, err);
    if (!fmt && !err.empty()) return nullptr;
    tok->impl_->chat_format = std::move(fmt);
    return tok;
}

void Tokenizer::set_chat_format(std::shared_ptr<const ChatFormat> format) {
    impl_->chat_format = std::move(format);
}

const ChatFormat *Tokenizer::chat_format() const { return impl_->chat_format.get(); }

void Tokenizer::apply_post_processor(std::vector<int32_t> &ids) const {
    const Impl &im = *impl_;
    if (im.post_prefix.empty() && im.post_suffix.empty()) return;
    ids.insert(ids.begin(), im.post_prefix.begin(), im.post_prefix.end());
    ids.insert(ids.end(), im.post_suffix.begin(), im.post_suffix.end());
}

int32_t Tokenizer::eos_token_id() const { return impl_->eos_id; }

std::vector<int32_t> Tokenizer::encode(const std::string &text, bool parse_special) const {
    const Impl &im = *impl_;
    std::vector<Piece> raw, pieces;
    im.split_added(text, 0, im.raw_by_first, parse_special, raw);
    // The normalizer is the identity, so "normalized" added tokens are matched
    // on the same text, inside what the raw pass left over.
    for (const Piece &p : raw) {
        if (p.id >= 0) { pieces.push_back(p); continue; }
        im.split_added(std::string_view(text).substr(p.begin, p.end - p.begin), p.begin,
                       im.normalized_by_first, parse_special, pieces);
    }
    struct ToModel final : PreTokenizer::WordSink {
        const BpeModel       &model;
        std::vector<int32_t> &ids;
        ToModel(const BpeModel &m, std::vector<int32_t> &out) : model(m), ids(out) {}
        void word(std::string_view w) override { model.tokenize(w, ids); }
    };
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 8);
    ToModel sink(im.model, ids);
    const auto scratch = im.pre.make_scratch();
    for (const Piece &p : pieces) {
        if (p.id >= 0) { ids.push_back(p.id); continue; }
        im.pre.run(std::string_view(text).substr(p.begin, p.end - p.begin), *scratch, sink);
    }
    return ids;
}

int32_t Tokenizer::token_id(const std::string &token_text) const {
    const auto it = impl_->added_by_content.find(token_text);
    return it == impl_->added_by_content.end() ? -1 : it->second;
}

std::string Tokenizer::token_bytes(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= impl_->bytes_by_id.size()) return {};
    return impl_->bytes_by_id[static_cast<size_t>(id)];
}

bool Tokenizer::is_special(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) < impl_->special_by_id.size() &&
           impl_->special_by_id[static_cast<size_t>(id)] != 0;
}

int32_t Tokenizer::vocab_size() const {
    return static_cast<int32_t>(impl_->bytes_by_id.size());
}

TokenStreamDecoder::TokenStreamDecoder(const Tokenizer &tok, bool skip_special)
    : tok_(tok), skip_special_(skip_special) {}

std::string TokenStreamDecoder::push(int32_t id) {
    if (skip_special_ && tok_.is_special(id)) return {};
    pending_ += tok_.token_bytes(id);
    std::string out;
    size_t i = 0;
    while (i < pending_.size()) {
        const utf8::ScanResult r = utf8::scan(pending_, i);
        if (r.kind == utf8::Scan::INCOMPLETE) break;   // wait for the next token
        if (r.kind == utf8::Scan::VALID) out.append(pending_, i, r.length);
        else out += "\xEF\xBF\xBD";
        i += r.length;
    }
    pending_.erase(0, i);
    return out;
}

std::string TokenStreamDecoder::finish() {
    std::string out = utf8::sanitize(pending_);
    pending_.clear();
    return out;
}

}  // namespace vlm
