// chat_prompt.cpp: GLM-4.6V's chat format, reproducing the committed
// chat_template.jinja (tests/fixtures/tokenizer/) for the message shapes our
// API produces: system / user (text and image parts in order) / assistant
// (past reasoning dropped unless after the last user turn) / tool results,
// `/nothink` when thinking is off, and the generation prompt. Tool
// declarations and video parts are not rendered (our API has neither).
//
// Ids: template tokens become their special ids; all text between them
// (template "\n"s and caller-supplied text) is encoded with parse_special =
// false, so a user typing "<|assistant|>" cannot start a turn. transformers
// tokenizes the whole rendered string with special tokens enabled, so the two
// differ only for text that contains special-token strings.
#include "text/chat_prompt.h"

#include "text/tokenizer_utf8.h"

#include <string_view>

namespace vlm {

namespace {

struct Segment {
    enum Kind { TOKEN, TEXT, IMAGE } kind;
    std::string text;        // TOKEN: the token's text; TEXT: literal text
    int         image = -1;  // IMAGE: the part's declared index
};

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

class Renderer {
public:
    std::vector<Segment> segs;
    void token(const char *t) { segs.push_back({Segment::TOKEN, t, -1}); }
    void text(std::string t) {
        if (!t.empty()) segs.push_back({Segment::TEXT, std::move(t), -1});
    }
    void image(int index) { segs.push_back({Segment::IMAGE, "<|image|>", index}); }
};

void render_user(Renderer &r, const ChatMessage &m, bool no_think) {
    r.token("<|user|>");
    r.text("\n");
    std::string rendered;   // the message text as the template sees it
    for (const ChatPart &p : m.parts) {
        if (p.kind == ChatPart::TEXT) {
            r.text(p.text);
            rendered += p.text;
        } else {
            r.token("<|begin_of_image|>");
            r.image(p.image);
            r.token("<|end_of_image|>");
            rendered += "<|begin_of_image|><|image|><|end_of_image|>";
        }
    }
    const std::string_view suffix = "/nothink";
    const bool has_suffix = rendered.size() >= suffix.size() &&
                            std::string_view(rendered).substr(rendered.size() - suffix.size()) == suffix;
    if (no_think && has_suffix) {
        // The user's own trailing "/nothink" stands in for the template's;
        // give it the token transformers would (it only asks for what
        // no_think already does, so this opens no injection).
        // The suffix lies in the text parts after the last image (an image
        // block ends in '>'), possibly spread over several of them.
        size_t remaining = suffix.size();
        while (remaining > 0 && !r.segs.empty() && r.segs.back().kind == Segment::TEXT) {
            std::string &last = r.segs.back().text;
            if (last.size() <= remaining) {
                remaining -= last.size();
                r.segs.pop_back();
            } else {
                last.resize(last.size() - remaining);
                remaining = 0;
            }
        }
        r.token("/nothink");
    } else if (no_think) {
        r.token("/nothink");
    }
}

void render_assistant(Renderer &r, const ChatMessage &m, bool after_last_user) {
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
    r.token("<|assistant|>");
    r.text("\n");
    r.token("<think>");
    const std::string kept = py_strip(reasoning);
    if (after_last_user && !kept.empty()) r.text(kept);
    r.token("</think>");
    r.text(after_newline(py_strip(content)));
}

std::vector<Segment> render_segments(const std::vector<ChatMessage> &messages,
                                     const ChatOptions &opt) {
    const bool no_think = !opt.enable_thinking;
    int last_user = -1;
    for (size_t i = 0; i < messages.size(); ++i)
        if (messages[i].role == "user") last_user = static_cast<int>(i);
    Renderer r;
    r.token("[gMASK]");
    r.token("<sop>");
    for (size_t i = 0; i < messages.size(); ++i) {
        const ChatMessage &m = messages[i];
        if (m.role == "system") {
            r.token("<|system|>");
            r.text(after_newline(plain_text(m)));
        } else if (m.role == "user") {
            render_user(r, m, no_think);
        } else if (m.role == "assistant") {
            render_assistant(r, m, static_cast<int>(i) > last_user);
        } else if (m.role == "tool") {
            if (i == 0 || messages[i - 1].role != "tool") r.token("<|observation|>");
            r.text("\n");
            r.token("<tool_response>");
            r.text(after_newline(plain_text(m)) + '\n');
            r.token("</tool_response>");
        }   // other roles render nothing, as in the template
    }
    if (opt.add_generation_prompt) {
        r.token("<|assistant|>");
        r.text("\n");
        if (no_think) {
            r.token("<think>");
            r.token("</think>");
            r.text("\n");
        }
    }
    return r.segs;
}

}  // namespace

std::string render_chat(const std::vector<ChatMessage> &messages, const ChatOptions &opt) {
    std::string out;
    for (const Segment &s : render_segments(messages, opt)) out += s.text;
    return out;
}

bool build_prompt_ids(const Tokenizer &tok, const std::vector<ChatMessage> &messages,
                      const ChatOptions &opt, const std::vector<int> &image_tokens,
                      std::vector<int32_t> &ids, std::string &err) {
    ids.clear();
    const std::vector<Segment> segs = render_segments(messages, opt);
    const int32_t image_id = opt.image_token_id >= 0 ? opt.image_token_id : tok.token_id("<|image|>");
    std::string pending;   // text between template tokens
    auto flush = [&] {
        if (pending.empty()) return;
        const std::vector<int32_t> t = tok.encode(pending, false);
        ids.insert(ids.end(), t.begin(), t.end());
        pending.clear();
    };
    size_t n_images = 0;
    for (const Segment &s : segs) {
        if (s.kind == Segment::TEXT) {
            pending += s.text;
            continue;
        }
        if (s.kind == Segment::IMAGE) {
            if (image_id < 0) { err = "tokenizer has no <|image|> token"; return false; }
            if (s.image >= 0 && static_cast<size_t>(s.image) != n_images) {
                err = "image part " + std::to_string(n_images) + " refers to image " +
                      std::to_string(s.image) + "; images must be referenced in order";
                return false;
            }
            if (n_images >= image_tokens.size()) {
                err = "the prompt has more image parts than the " +
                      std::to_string(image_tokens.size()) + " image token counts given";
                return false;
            }
            const int n = image_tokens[n_images++];
            if (n <= 0 || n > (1 << 20)) {
                err = "image " + std::to_string(n_images - 1) + " has an invalid token count " +
                      std::to_string(n);
                return false;
            }
            flush();
            ids.insert(ids.end(), static_cast<size_t>(n), image_id);
            continue;
        }
        const int32_t id = tok.token_id(s.text);
        if (id < 0) {
            // `/nothink` is a special token in GLM-4.6V's file but plain text
            // is what the template means where a tokenizer lacks it.
            if (s.text == "/nothink") { pending += s.text; continue; }
            err = "tokenizer has no special token " + s.text;
            return false;
        }
        flush();
        ids.push_back(id);
    }
    flush();
    if (n_images != image_tokens.size()) {
        err = "the prompt has " + std::to_string(n_images) + " image parts but " +
              std::to_string(image_tokens.size()) + " image token counts were given";
        return false;
    }
    return true;
}

}  // namespace vlm
