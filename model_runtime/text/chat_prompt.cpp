// chat_prompt.cpp: the built-in GLM-4.6V format (render_chat), reproducing
// the committed chat_template.jinja (tests/fixtures/tokenizer/) for the
// message shapes our API produces: system / user (text and image parts in
// order) / assistant (past reasoning dropped unless after the last user turn)
// / tool results, `/nothink` when thinking is off, and the generation prompt.
// Tool declarations and video parts are not rendered (our API has neither).
// And the prompt ids (build_prompt_ids): whichever format rendered the text,
// it is tokenized and its image placeholders expanded as Glm46VProcessor does.
#include "text/chat_prompt.h"

#include "text/chat_format.h"
#include "text/tokenizer_utf8.h"

#include <string_view>

namespace vlm {

namespace {

// What Python's str.isspace() accepts (jinja's strip() is str.strip()).
bool is_py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string py_strip(std::string_view s) {
    size_t b = 0;
    while (b < s.size()) {
        const utf8::ScanResult r = utf8::scan(s, b);
        if (r.kind != utf8::Scan::VALID || !is_py_space(r.codepoint)) break;
        b += r.length;
    }
    size_t e = s.size();
    while (e > b) {
        size_t start = e - 1;
        while (start > b && e - start < 4 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80)
            --start;
        const utf8::ScanResult r = utf8::scan(s, start);
        if (r.kind != utf8::Scan::VALID || start + r.length != e || !is_py_space(r.codepoint))
            break;
        e = start;
    }
    return std::string(s.substr(b, e - b));
}

// "\n" + text, built without operator+ (GCC 12 -Wrestrict false positive).
std::string after_newline(std::string_view text) {
    std::string out(1, '\n');
    out.append(text);
    return out;
}

// Text parts concatenated; images dropped (the template's plain_text macro).
std::string plain_text(const ChatMessage &m) {
    std::string out;
    for (const ChatPart &p : m.parts)
        if (p.kind == ChatPart::TEXT) out += p.text;
    return out;
}

// The user turn: text parts and image blocks in order (the template's
// item_text macro), then `/nothink` unless the text already ends with it.
void render_user(std::string &out, const ChatMessage &m, bool no_think) {
    std::string text;
    for (const ChatPart &p : m.parts) {
        if (p.kind == ChatPart::TEXT) text += p.text;
        else text += "<|begin_of_image|><|image|><|end_of_image|>";
    }
    out += "<|user|>\n";
    out += text;
    const std::string_view suffix = "/nothink";
    const bool has_suffix = text.size() >= suffix.size() &&
                            std::string_view(text).substr(text.size() - suffix.size()) == suffix;
    if (no_think && !has_suffix) out += suffix;
}

void render_assistant(std::string &out, const ChatMessage &m, bool after_last_user) {
    std::string content = plain_text(m);
    std::string reasoning;
    const size_t close = content.find("</think>");
    if (close != std::string::npos) {
        // content.split('</think>')[0].split('<think>')[-1] and
        // content.split('</think>')[-1]
        const std::string before = content.substr(0, close);
        const size_t open = before.rfind("<think>");
        reasoning = open == std::string::npos ? before : before.substr(open + 7);
        content = content.substr(content.rfind("</think>") + 8);
    }
    out += "<|assistant|>\n<think>";
    const std::string kept = py_strip(reasoning);
    if (after_last_user) out += kept;
    out += "</think>";
    out += after_newline(py_strip(content));
}

// Non-overlapping occurrences, left to right (re.finditer on the escaped text).
size_t count_occurrences(std::string_view text, std::string_view what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + what.size())) ++n;
    return n;
}

const ChatFormat &builtin_format() {
    static const std::unique_ptr<ChatFormat> f = [] {
        std::string err;
        return ChatFormat::load("", "", nullptr, true, err);
    }();
    return *f;
}

const ChatFormat &format_of(const Tokenizer &tok) {
    const ChatFormat *f = tok.chat_format();
    return f ? *f : builtin_format();
}

}  // namespace

std::string render_chat(const std::vector<ChatMessage> &messages, const ChatOptions &opt) {
    // `enable_thinking is defined and not enable_thinking`
    const bool no_think = opt.enable_thinking.has_value() && !*opt.enable_thinking;
    int last_user = -1;
    for (size_t i = 0; i < messages.size(); ++i)
        if (messages[i].role == "user") last_user = static_cast<int>(i);
    std::string out = "[gMASK]<sop>";
    for (size_t i = 0; i < messages.size(); ++i) {
        const ChatMessage &m = messages[i];
        if (m.role == "system") {
            out += "<|system|>";
            out += after_newline(plain_text(m));
        } else if (m.role == "user") {
            render_user(out, m, no_think);
        } else if (m.role == "assistant") {
            render_assistant(out, m, static_cast<int>(i) > last_user);
        } else if (m.role == "tool") {
            if (i == 0 || messages[i - 1].role != "tool") out += "<|observation|>";
            out += "\n<tool_response>";
            out += after_newline(plain_text(m));
            out += "\n</tool_response>";
        }   // other roles render nothing, as in the template
    }
    if (opt.add_generation_prompt) {
        out += "<|assistant|>\n";
        if (no_think) out += "<think></think>\n";
    }
    return out;
}

bool render_prompt(const Tokenizer &tok, const std::vector<ChatMessage> &messages, const ChatOptions &opt,
                   std::string &text, std::string &err) {
    return format_of(tok).render(messages, opt, text, err);
}

bool build_prompt_ids(const Tokenizer &tok, const std::vector<ChatMessage> &messages,
                      const ChatOptions &opt, const std::vector<int> &image_tokens,
                      std::vector<int32_t> &ids, std::string &err) {
    ids.clear();
    // The processor takes images in the order the messages hold them.
    size_t n_parts = 0;
    for (const ChatMessage &m : messages)
        for (const ChatPart &p : m.parts) {
            if (p.kind != ChatPart::IMAGE) continue;
            if (p.image >= 0 && static_cast<size_t>(p.image) != n_parts) {
                err = "image part " + std::to_string(n_parts) + " refers to image " + std::to_string(p.image) +
                      "; images must be referenced in order";
                return false;
            }
            ++n_parts;
        }
    if (n_parts != image_tokens.size()) {
        err = "the messages have " + std::to_string(n_parts) + " image parts but " +
              std::to_string(image_tokens.size()) + " image token counts were given";
        return false;
    }
    const ChatFormat &fmt = format_of(tok);
    std::string text;
    if (!fmt.render(messages, opt, text, err)) return false;

    // What Glm46VProcessor checks: one placeholder per image in the text, and
    // as many placeholder tokens after tokenizing.
    const std::string &placeholder = fmt.image_token();
    const size_t n_placeholders = count_occurrences(text, placeholder);
    if (n_placeholders != image_tokens.size()) {
        err = "the prompt has " + std::to_string(n_placeholders) + " image placeholders (" + placeholder + ") for " +
              std::to_string(image_tokens.size()) + " images: " +
              (n_placeholders > image_tokens.size() ? "the text spells the placeholder"
                                                    : "the chat template leaves an image out");
        return false;
    }
    const int32_t placeholder_id = tok.token_id(placeholder);
    if (n_placeholders > 0 && placeholder_id < 0) {
        err = "the tokenizer has no token " + placeholder + " for image placeholders";
        return false;
    }
    std::vector<int32_t> text_ids = tok.encode(text, true);
    if (fmt.adds_special_tokens(text)) tok.apply_post_processor(text_ids);
    size_t n_placeholder_ids = 0;
    if (placeholder_id >= 0)
        for (int32_t id : text_ids) n_placeholder_ids += id == placeholder_id;
    if (n_placeholder_ids != n_placeholders) {
        err = "the prompt text has " + std::to_string(n_placeholders) + " image placeholders but its tokens " +
              std::to_string(n_placeholder_ids);
        return false;
    }
    const int32_t image_id = opt.image_token_id >= 0 ? opt.image_token_id : placeholder_id;
    size_t image = 0;
    for (int32_t id : text_ids) {
        if (n_placeholders == 0 || id != placeholder_id) {
            ids.push_back(id);
            continue;
        }
        const int n = image_tokens[image++];
        if (n <= 0 || n > (1 << 20)) {
            err = "image " + std::to_string(image - 1) + " has an invalid token count " + std::to_string(n);
            return false;
        }
        ids.insert(ids.end(), static_cast<size_t>(n), image_id);
    }
    return true;
}

}  // namespace vlm
