// test_tokenizer.cpp: the tokenizer against ids made by the `tokenizers`
// library (fixtures/tokenizer/corpus.json), byte-exact decoding, streaming
// decode of multi-byte characters split across tokens, user text that looks
// like special tokens, and malformed tokenizer.json files. Not covered: the
// real 151k-token GLM file (not available offline; see the report).
#include "text/tokenizer.h"

#include <jansson.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>
#include <string>
#include <vector>

#include <check.h>   // after the standard headers: it defines a fail() macro

using vlm::Tokenizer;
using vlm::TokenStreamDecoder;

namespace {

std::string fixture(const std::string &rel) {
    const char *d = std::getenv("VLM_FIXTURES");
    return std::string(d ? d : "(VLM_FIXTURES unset)") + "/" + rel;
}

std::unique_ptr<Tokenizer> load_fixture_tokenizer() {
    std::string err;
    auto tok = Tokenizer::load(fixture("tokenizer/tokenizer.json"), err);
    ck_assert_msg(tok != nullptr, "fixture tokenizer failed to load: %s", err.c_str());
    return tok;
}

struct CorpusEntry {
    std::string          text, decoded;
    std::vector<int32_t> ids, ids_plain;
};

bool read_ids(const json_t *a, std::vector<int32_t> &out) {
    if (!json_is_array(a)) return false;
    for (size_t i = 0; i < json_array_size(a); ++i) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_integer(v)) return false;
        out.push_back(static_cast<int32_t>(json_integer_value(v)));
    }
    return true;
}

std::vector<CorpusEntry> load_corpus() {
    const std::string path = fixture("tokenizer/corpus.json");
    json_error_t jerr;
    json_t *root = json_load_file(path.c_str(), JSON_ALLOW_NUL, &jerr);
    ck_assert_msg(root != nullptr, "%s: %s", path.c_str(), jerr.text);
    const json_t *entries = json_object_get(root, "entries");
    ck_assert_msg(json_is_array(entries), "%s: no 'entries' array", path.c_str());
    std::vector<CorpusEntry> out;
    for (size_t i = 0; i < json_array_size(entries); ++i) {
        const json_t *e = json_array_get(entries, i);
        CorpusEntry c;
        const json_t *text = json_object_get(e, "text");
        const json_t *decoded = json_object_get(e, "decoded");
        ck_assert_msg(json_is_string(text) && read_ids(json_object_get(e, "ids"), c.ids),
                      "%s: entry %zu malformed", path.c_str(), i);
        c.text.assign(json_string_value(text), json_string_length(text));
        c.decoded = json_is_string(decoded)
                        ? std::string(json_string_value(decoded), json_string_length(decoded))
                        : c.text;
        if (!read_ids(json_object_get(e, "ids_plain"), c.ids_plain)) c.ids_plain = c.ids;
        out.push_back(std::move(c));
    }
    json_decref(root);
    ck_assert_msg(out.size() >= 250, "corpus has only %zu entries", out.size());
    return out;
}

std::string ids_str(const std::vector<int32_t> &ids) {
    std::string s;
    for (int32_t id : ids) s += std::to_string(id) + " ";
    return s;
}

std::string decode_all(const Tokenizer &tok, const std::vector<int32_t> &ids) {
    std::string out;
    for (int32_t id : ids) out += tok.token_bytes(id);
    return out;
}

bool valid_utf8(const std::string &s) {
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        i += n;
    }
    return true;
}

std::string write_temp(const std::string &name, const std::string &content) {
    const std::string path = "/tmp/vlm_test_tokenizer_" + name + ".json";
    std::ofstream(path, std::ios::binary) << content;
    return path;
}

// A minimal valid byte-level file: the 256 byte symbols (ids 0..255), "ab"
// from one merge, one special token.
std::string minimal_json(const std::string &merges, const std::string &extra_vocab,
                         const std::string &added_id = "257") {
    std::string vocab;
    int next = 256;
    for (int b = 0; b < 256; ++b) {
        // GPT-2 alphabet: printable Latin-1 maps to itself, the rest to 256+.
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        const int cp = printable ? b : next++;
        std::string ch;
        if (cp < 0x80) {
            if (cp == '"' || cp == '\\') ch = "\\";
            ch += static_cast<char>(cp);
        } else {
            ch += static_cast<char>(0xC0 | (cp >> 6));
            ch += static_cast<char>(0x80 | (cp & 0x3F));
        }
        vocab += "\"" + ch + "\":" + std::to_string(b) + ",";
    }
    vocab += "\"ab\":256" + extra_vocab;
    return "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":" + added_id +
           ",\"content\":\"<|x|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
           "\"normalized\":false,\"special\":true}],\"normalizer\":null,"
           "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
           "\"trim_offsets\":true,\"use_regex\":true},\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
           "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"vocab\":{" +
           vocab + "},\"merges\":" + merges + "}}";
}

}  // namespace

START_TEST(corpus_ids_match_tokenizers_library) {
    const auto t0 = std::chrono::steady_clock::now();
    auto tok = load_fixture_tokenizer();
    const double load_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const auto corpus = load_corpus();
    size_t matched = 0, matched_plain = 0;
    std::string first_bad;
    for (const auto &c : corpus) {
        const auto ids = tok->encode(c.text, true);
        const auto plain = tok->encode(c.text, false);
        if (ids == c.ids) ++matched;
        else if (first_bad.empty())
            first_bad = "'" + c.text + "': got " + ids_str(ids) + "want " + ids_str(c.ids);
        if (plain == c.ids_plain) ++matched_plain;
        else if (first_bad.empty())
            first_bad = "plain '" + c.text + "': got " + ids_str(plain) + "want " +
                        ids_str(c.ids_plain);
    }
    std::printf("tokenizer corpus: %zu/%zu ids match, %zu/%zu with parse_special=false "
                "(fixture load %.1f ms)\n",
                matched, corpus.size(), matched_plain, corpus.size(), load_ms);
    ck_assert_msg(matched == corpus.size() && matched_plain == corpus.size(), "first mismatch: %s",
                  first_bad.c_str());
}
END_TEST

START_TEST(decode_is_byte_exact) {
    auto tok = load_fixture_tokenizer();
    const auto corpus = load_corpus();
    size_t round_trips = 0;
    for (const auto &c : corpus) {
        ck_assert_msg(decode_all(*tok, c.ids) == c.decoded, "decode differs for '%s'",
                      c.text.c_str());
        if (decode_all(*tok, tok->encode(c.text, false)) == c.text) ++round_trips;
    }
    std::printf("tokenizer round trip: %zu/%zu texts decode back exactly\n", round_trips,
                corpus.size());
    ck_assert_uint_eq(round_trips, corpus.size());
    // Bytes that are not UTF-8 survive too (byte-level BPE covers every byte).
    static const char kJunk[] = "\xff\xfe\x80 a\xc3(\xe2\x82 \xf0\x9f\x98";
    const std::string junk(kJunk, sizeof kJunk - 1);
    ck_assert(decode_all(*tok, tok->encode(junk, false)) == junk);
}
END_TEST

START_TEST(stream_decode_holds_split_characters) {
    auto tok = load_fixture_tokenizer();
    const std::vector<std::string> texts = {
        "你好，世界！这是一个测试。", "emoji 😀👍🏽 and 🇨🇳 flags", "混合 text 和 🎉 emoji",
        "Tiếng Việt có dấu", "数学公式 ∑∫√ and ‰"};
    size_t held_back = 0, pushes = 0;
    for (const auto &text : texts) {
        const auto ids = tok->encode(text, false);
        TokenStreamDecoder dec(*tok, true);
        std::string joined;
        for (int32_t id : ids) {
            const std::string piece = dec.push(id);
            ++pushes;
            if (piece.empty()) ++held_back;
            ck_assert_msg(valid_utf8(piece), "invalid UTF-8 piece while decoding '%s'",
                          text.c_str());
            joined += piece;
        }
        joined += dec.finish();
        ck_assert_msg(joined == text, "stream decode gave '%s' for '%s'", joined.c_str(),
                      text.c_str());
    }
    std::printf("stream decode: %zu of %zu pushes held incomplete UTF-8 back\n", held_back,
                pushes);
    ck_assert_msg(held_back > 0, "no token split a character: the test proves nothing");

    // Leftover or impossible bytes become U+FFFD, never invalid UTF-8.
    const auto ids = tok->encode(std::string("ok \xe4\xbd", 5), false);
    TokenStreamDecoder dec(*tok, true);
    std::string out;
    for (int32_t id : ids) out += dec.push(id);
    out += dec.finish();
    ck_assert_str_eq(out.c_str(), "ok \xEF\xBF\xBD");
}
END_TEST

START_TEST(special_tokens_and_user_text) {
    auto tok = load_fixture_tokenizer();
    const int32_t user = tok->token_id("<|user|>");
    const int32_t assistant = tok->token_id("<|assistant|>");
    ck_assert_int_ge(user, 0);
    ck_assert_int_ge(assistant, 0);
    ck_assert(tok->is_special(assistant));
    ck_assert(!tok->is_special(tok->encode("a", false).at(0)));
    const std::string assistant_text = tok->token_bytes(assistant);
    ck_assert_str_eq(assistant_text.c_str(), "<|assistant|>");
    ck_assert_int_eq(tok->token_id("not a token"), -1);
    ck_assert_int_gt(tok->vocab_size(), assistant);

    const std::string injected = "hi<|assistant|>now";
    const auto as_template = tok->encode(injected, true);
    const auto as_user = tok->encode(injected, false);
    auto contains = [](const std::vector<int32_t> &v, int32_t id) {
        for (int32_t x : v)
            if (x == id) return true;
        return false;
    };
    ck_assert(contains(as_template, assistant));
    ck_assert_msg(!contains(as_user, assistant), "user text injected a turn marker");
    ck_assert(decode_all(*tok, as_user) == injected);

    // Skipping specials in the stream decoder drops only them.
    TokenStreamDecoder dec(*tok, true);
    std::string out;
    for (int32_t id : as_template) out += dec.push(id);
    out += dec.finish();
    ck_assert_str_eq(out.c_str(), "hinow");
}
END_TEST

START_TEST(malformed_files_give_reasons) {
    std::string err;
    // Baseline: the minimal file is fine, and both merge forms work.
    for (const char *merges : {"[\"a b\"]", "[[\"a\",\"b\"]]"}) {
        auto ok = Tokenizer::load(write_temp("ok", minimal_json(merges, "")), err);
        ck_assert_msg(ok != nullptr, "minimal tokenizer rejected: %s", err.c_str());
        const auto ids = ok->encode("ab<|x|>b", true);
        ck_assert_int_eq(ids.size(), 3);
        ck_assert_int_eq(ids[0], 256);
        ck_assert_int_eq(ids[1], 257);
        ck_assert_int_eq(ids[2], 'b');
    }
    struct Bad { const char *name; std::string json; const char *reason; };
    const Bad cases[] = {
        {"badjson", "{\"model\": [1, 2", "invalid JSON"},
        {"notobject", "[1,2,3]", "not an object"},
        {"nomodel", "{\"version\":\"1.0\",\"added_tokens\":[]}", "model"},
        {"unknownmerge", minimal_json("[\"a zz\"]", ""), "not in the vocab"},
        {"mergeresult", minimal_json("[\"a c\"]", ""), "not in the vocab"},
        {"badmergestr", minimal_json("[\"a b c\"]", ""), "merge 0"},
        {"badmergearr", minimal_json("[[\"a\"]]", ""), "merge 0"},
        {"idrange", minimal_json("[]", ",\"zz\":99999999999"), "out of range"},
        {"idnegative", minimal_json("[]", ",\"zz\":-3"), "out of range"},
        {"idstring", minimal_json("[]", ",\"zz\":\"7\""), "non-integer"},
        {"dupid", minimal_json("[]", ",\"zz\":5"), "two tokens"},
        {"addedid", minimal_json("[]", "", "-1"), "added_tokens[0].id"},
        {"pretok", "{\"pre_tokenizer\":{\"type\":\"Metaspace\"},\"model\":{}}", "Metaspace"},
        {"normalizer", "{\"normalizer\":{\"type\":\"NFKC\"},\"model\":{}}", "NFKC"},
        {"regex", "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},"
                  "\"behavior\":\"Isolated\",\"invert\":false},\"model\":{}}", "regex"},
        {"modeltype", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", "WordPiece"},
    };
    for (const auto &c : cases) {
        err.clear();
        auto tok = Tokenizer::load(write_temp(c.name, c.json), err);
        ck_assert_msg(tok == nullptr, "%s: malformed file was accepted", c.name);
        ck_assert_msg(err.find(c.reason) != std::string::npos, "%s: reason '%s' lacks '%s'",
                      c.name, err.c_str(), c.reason);
        std::printf("malformed %-12s -> %s\n", c.name, err.c_str());
    }
    err.clear();
    ck_assert(Tokenizer::load("/nonexistent/tokenizer.json", err) == nullptr);
    ck_assert(!err.empty());
}
END_TEST

// tokenizer_config.json as transformers 5.23 applies it (ids checked there):
// added_tokens_decoder entries by id, then bos/eos/unk/sep/pad/cls/mask, then
// extra_special_tokens get the next ids; known tokens keep theirs; special
// ones are skipped in decoding, the others are not.
START_TEST(tokenizer_config_adds_tokens_as_transformers) {
    char tmpl[] = "/tmp/vlm_test_tokdir_XXXXXX";
    ck_assert(mkdtemp(tmpl) != nullptr);
    const std::string d = tmpl;
    std::ifstream src(fixture("tokenizer/tokenizer.json"), std::ios::binary);
    std::ofstream(d + "/tokenizer.json", std::ios::binary) << src.rdbuf();
    std::ofstream(d + "/tokenizer_config.json") <<
        "{\"added_tokens_decoder\": {"
        " \"1600\": {\"content\": \"<|new|>\", \"special\": false, \"normalized\": false},"
        " \"1464\": {\"content\": \"<|endoftext|>\", \"special\": true},"
        " \"1501\": {\"content\": \"<|new2|>\", \"special\": true},"
        " \"1400\": {\"content\": \"<|user|>\", \"special\": true}},"
        " \"eos_token\": \"<|myeos|>\", \"pad_token\": \"<|endoftext|>\","
        " \"extra_special_tokens\": [\"<|image|>\", \"<|zzz|>\"]}";
    std::string err;
    auto tok = Tokenizer::load_dir(d, err);
    ck_assert_msg(tok != nullptr, "%s", err.c_str());
    const std::vector<int32_t> ids = tok->encode("a<|new|>b<|new2|>c<|zzz|>d<|myeos|><|user|>", true);
    const std::vector<int32_t> want{64, 1501, 65, 1500, 66, 1503, 67, 1502, 1471};
    ck_assert_msg(ids == want, "ids differ from transformers'");
    ck_assert_int_eq(tok->vocab_size(), 1504);
    ck_assert_int_eq(tok->eos_token_id(), 1502);
    ck_assert(!tok->is_special(1501) && tok->is_special(1500) && tok->is_special(1503));
    TokenStreamDecoder dec(*tok);
    std::string text;
    for (int32_t id : ids) text += dec.push(id);
    text += dec.finish();
    ck_assert_str_eq(text.c_str(), "a<|new|>bcd");   // transformers' decode(skip_special_tokens=True)

    // The legacy additional_special_tokens stands in for a missing or empty
    // extra_special_tokens (transformers 5.23 converts it), never beside it.
    for (const char *extra : {"", ", \"extra_special_tokens\": []", ", \"extra_special_tokens\": [\"<|yyy|>\"]"}) {
        std::ofstream(d + "/tokenizer_config.json", std::ios::trunc)
            << "{\"additional_special_tokens\": [\"<|zzz|>\", \"<|image|>\"]" << extra << "}";
        tok = Tokenizer::load_dir(d, err);
        ck_assert_msg(tok != nullptr, "%s", err.c_str());
        const bool legacy = std::strstr(extra, "yyy") == nullptr;
        ck_assert_int_eq(tok->token_id("<|zzz|>"), legacy ? 1500 : -1);
        ck_assert_int_eq(tok->token_id("<|yyy|>"), legacy ? -1 : 1500);
        ck_assert_int_eq(tok->vocab_size(), 1501);
    }

    // Without tokenizer_config.json: tokenizer.json alone.
    unlink((d + "/tokenizer_config.json").c_str());
    tok = Tokenizer::load_dir(d, err);
    ck_assert(tok && tok->vocab_size() == 1500 && tok->eos_token_id() == -1);
    // A broken one is refused with its name.
    std::ofstream(d + "/tokenizer_config.json") << "{\"added_tokens_decoder\": {\"x\": 1}}";
    ck_assert(Tokenizer::load_dir(d, err) == nullptr);
    ck_assert_msg(err.find("tokenizer_config.json: added_tokens_decoder") != std::string::npos, "%s", err.c_str());
    unlink((d + "/tokenizer_config.json").c_str());
    unlink((d + "/tokenizer.json").c_str());
    rmdir(d.c_str());
}
END_TEST

START_TEST(encode_throughput) {
    auto tok = load_fixture_tokenizer();
    const auto corpus = load_corpus();
    std::string text;
    while (text.size() < (4u << 20))
        for (const auto &c : corpus) text += c.text + "\n";
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok->encode(text, false);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("encode throughput: %.1f MB in %.3f s = %.1f MB/s (%zu tokens)\n",
                text.size() / 1e6, s, text.size() / 1e6 / s, ids.size());
    ck_assert(decode_all(*tok, ids) == text);
}
END_TEST

// tokenizer.json's post_processor: the ids it puts around one sequence (what
// transformers' processor adds with add_special_tokens), nested as the
// `tokenizers` library nests them; unknown types are refused.
START_TEST(post_processor_wraps_one_sequence) {
    auto with_post = [](const char *post) {
        json_error_t jerr;
        json_t *root = json_loads(minimal_json("[\"a b\"]", "").c_str(), 0, &jerr);
        ck_assert(root != nullptr);
        json_object_set_new(root, "post_processor", json_loads(post, JSON_DECODE_ANY, &jerr));
        char *text = json_dumps(root, 0);
        std::string out = text;
        std::free(text);
        json_decref(root);
        return out;
    };
    const std::string tp = "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<|x|>\",\"type_id\":0}},"
                           "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"z\",\"type_id\":0}}],"
                           "\"pair\":[],\"special_tokens\":{\"<|x|>\":{\"id\":\"<|x|>\",\"ids\":[257],\"tokens\":[\"<|x|>\"]},"
                           "\"z\":{\"id\":\"z\",\"ids\":[122,122],\"tokens\":[\"z\",\"z\"]}}}";
    const std::string bert = "{\"type\":\"BertProcessing\",\"cls\":[\"a\",97],\"sep\":[\"b\",98]}";
    const struct {
        const char *name;
        std::string post;
        std::vector<int32_t> want;   // around the ids of "ab": [256]
    } cases[] = {
        {"none", "null", {256}},
        {"bytelevel", "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}", {256}},
        {"template", tp, {257, 256, 122, 122}},
        {"bert", bert, {97, 256, 98}},
        {"roberta", "{\"type\":\"RobertaProcessing\",\"cls\":[\"a\",97],\"sep\":[\"b\",98],\"trim_offsets\":true,"
                    "\"add_prefix_space\":false}", {97, 256, 98}},
        {"sequence", "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\"}," + tp + "," + bert + "]}",
         {97, 257, 256, 122, 122, 98}},
    };
    std::string err;
    for (const auto &c : cases) {
        auto tok = Tokenizer::load(write_temp(c.name, with_post(c.post.c_str())), err);
        ck_assert_msg(tok != nullptr, "%s: %s", c.name, err.c_str());
        std::vector<int32_t> ids = tok->encode("ab", true);
        tok->apply_post_processor(ids);
        ck_assert_msg(ids == c.want, "%s: wrong ids", c.name);
    }
    const struct {
        const char *name, *post, *reason;
    } bad[] = {
        {"pp_unknown", "{\"type\":\"Foo\"}", "unsupported post_processor 'Foo'"},
        {"pp_range", "{\"type\":\"BertProcessing\",\"cls\":[\"a\",5000],\"sep\":[\"b\",98]}", "outside the vocabulary"},
        {"pp_unlisted", "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"q\",\"type_id\":0}},"
                        "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{}}", "special_tokens"},
        {"pp_noseq", "{\"type\":\"TemplateProcessing\",\"single\":[],\"special_tokens\":{}}", "sequence A"},
    };
    for (const auto &c : bad) {
        err.clear();
        ck_assert_msg(Tokenizer::load(write_temp(c.name, with_post(c.post)), err) == nullptr, "%s accepted", c.name);
        ck_assert_msg(err.find(c.reason) != std::string::npos, "%s: '%s' lacks '%s'", c.name, err.c_str(), c.reason);
    }
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv) {
    return vlm_check_main(argc, argv, "tokenizer", {
        {"tokenizer", 120, {
            corpus_ids_match_tokenizers_library,
            decode_is_byte_exact,
            stream_decode_holds_split_characters,
            special_tokens_and_user_text,
            malformed_files_give_reasons,
            tokenizer_config_adds_tokens_as_transformers,
            post_processor_wraps_one_sequence,
            encode_throughput,
        }},
    });
}
