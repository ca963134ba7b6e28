// WordPress REST client for bulk alt text: lists media and posts (context=edit, paged), plans which
// alts are missing/weak, generates them (one request per attachment, shared by the media item and
// every post image linked to it), then writes media alt_text and post_content with a re-read
// before each write: if the item changed meanwhile, the plan is redone on the fresh text (the
// author's edits win) and the write retried, or reported as a conflict.
// Leaves out: an atomic compare-and-set (WordPress has no If-Match; the re-read narrows the race to
// the time between two requests), sites without /wp-json/ permalinks, multisite network walks.
#include "wordpress_mode.h"

#include <jansson.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <thread>

#include "alt_quality.h"
#include "doc_images.h"
#include "http_client.h"
#include "job_runner.h"
#include "run_common.h"

namespace vlm::bulk {

namespace {

struct WpItem {
    std::string kind;           // "media" or a post type REST base ("posts", "pages")
    long long id = 0;
    std::string title;
    std::string modified_gmt;
    std::string content_raw;    // posts
    std::string alt_text;       // media
    std::string source_url;     // media
    std::string fetch_url;      // media: the rendition we download for the description
};

struct WpApi {
    const Options& opts;
    HttpClient http;

    bool plain_permalinks = false;  // no /wp-json/ rewrite: address routes as ?rest_route=

    std::string api(const std::string& path) const {
        if (!plain_permalinks) return opts.site + "/wp-json/wp/v2/" + path;
        size_t q = path.find('?');
        std::string route = "/?rest_route=/wp/v2/" + path.substr(0, q);
        return opts.site + route + (q == std::string::npos ? "" : "&" + path.substr(q + 1));
    }

    // status 0 = transport failure. Parsed JSON (owned by caller) on 2xx. Retries 429/5xx and
    // transport errors with backoff (writes are idempotent: the same body sent twice is harmless).
    long request(const std::string& method, const std::string& url, const std::string& body, json_t** out,
                 std::string& err, std::map<std::string, std::string>* headers = nullptr) {
        HttpRequest req;
        req.method = method;
        req.url = url;
        req.basic_auth = opts.user + ":" + opts.app_password;
        req.headers = {"Accept: application/json", "Expect:"};
        if (!body.empty()) {
            req.headers.push_back("Content-Type: application/json");
            req.body = body;
        }
        HttpResponse res;
        for (int attempt = 0;; ++attempt) {
            http.perform(req, res);
            bool retry = res.status == 0 || res.status == 429 || res.status == 502 || res.status == 503
                         || res.status == 504;
            if (!retry || attempt >= opts.max_retries) break;
            double wait = std::min(30.0, 0.5 * std::pow(2.0, attempt));
            auto it = res.headers.find("retry-after");
            if (it != res.headers.end()) wait = std::max(wait, std::min(120.0, parse_retry_after(it->second)));
            if (!opts.quiet)
                std::fprintf(stderr, "vlm-bulk: WordPress %s, retrying in %.1fs\n",
                             res.status ? ("HTTP " + std::to_string(res.status)).c_str() : res.transport_error.c_str(),
                             wait);
            std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(wait * 1000)));
        }
        if (res.status == 0) {
            err = url + ": " + res.transport_error;
            return 0;
        }
        if (headers) *headers = res.headers;
        if (res.status < 200 || res.status >= 300) {
            err = url + ": HTTP " + std::to_string(res.status) + " " + res.body.substr(0, 200);
            for (char& c : err)
                if (c == '\n' || c == '\r') c = ' ';
            return res.status;
        }
        json_error_t jerr;
        *out = json_loadb(res.body.data(), res.body.size(), 0, &jerr);
        if (!*out) {
            err = url + ": invalid JSON: " + jerr.text;
            return -1;
        }
        return res.status;
    }
};

std::string str_at(json_t* obj, const char* key, const char* sub = nullptr) {
    json_t* v = json_object_get(obj, key);
    if (sub) v = json_object_get(v, sub);
    return json_is_string(v) ? std::string(json_string_value(v), json_string_length(v)) : "";
}

bool parse_item(json_t* o, const std::string& kind, WpItem& item) {
    json_t* id = json_object_get(o, "id");
    if (!json_is_integer(id)) return false;
    item.kind = kind;
    item.id = json_integer_value(id);
    item.title = str_at(o, "title", "raw");
    item.modified_gmt = str_at(o, "modified_gmt");
    if (kind == "media") {
        item.alt_text = str_at(o, "alt_text");
        item.source_url = str_at(o, "source_url");
        // WordPress's "large" rendition (1024 px) describes as well as the original and is far
        // smaller to download and send; small uploads have no sizes and use the original.
        json_t* large = json_object_get(json_object_get(json_object_get(o, "media_details"), "sizes"), "large");
        std::string large_url = str_at(large, "source_url");
        item.fetch_url = large_url.empty() ? item.source_url : large_url;
    } else {
        item.content_raw = str_at(o, "content", "raw");
    }
    return true;
}

std::string url_escape(const std::string& s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out.push_back(static_cast<char>(c));
        else { out.push_back('%'); out.push_back(hex[c >> 4]); out.push_back(hex[c & 15]); }
    }
    return out;
}

// Lists every item of a collection (or the given ids), page by page. -1 = ok, else an exit code.
int list_all(WpApi& wp, const std::string& kind, const std::string& filter, std::vector<WpItem>& items) {
    std::string query = kind == "media" ? "media?context=edit&media_type=image&per_page=100"
                                        : kind + "?context=edit&per_page=100&status=publish,future,draft,pending,private";
    query += filter;
    for (int page = 1;; ++page) {
        json_t* arr = nullptr;
        std::string err;
        std::map<std::string, std::string> headers;
        long st = wp.request("GET", wp.api(query + "&page=" + std::to_string(page)), "", &arr, err, &headers);
        if (st == 0 || st == 401 || st == 403) {
            std::fprintf(stderr, "vlm-bulk: WordPress %s: %s\n", st == 0 ? "unreachable" : "authentication failed",
                         err.c_str());
            return exit_service;
        }
        if (st == 400 && page > 1) break;  // past the last page
        if (!arr || !json_is_array(arr)) {
            std::fprintf(stderr, "vlm-bulk: WordPress: %s\n", err.empty() ? "listing is not a JSON array" : err.c_str());
            json_decref(arr);
            return st == 404 ? exit_usage : exit_service;
        }
        size_t idx;
        json_t* o;
        json_array_foreach(arr, idx, o) {
            WpItem item;
            if (parse_item(o, kind, item)) items.push_back(std::move(item));
        }
        size_t n = json_array_size(arr);
        json_decref(arr);
        long total_pages = 1;
        auto it = headers.find("x-wp-totalpages");
        if (it != headers.end()) total_pages = std::strtol(it->second.c_str(), nullptr, 10);
        if (n == 0 || page >= total_pages || page >= 100000) break;
    }
    return -1;
}

std::string host_of(const std::string& url) {
    size_t s = url.find("://");
    if (s == std::string::npos) return {};
    size_t b = s + 3, e = url.find_first_of("/?#", b);
    return url.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

// Absolute URL for an <img src>; empty when it must not be fetched.
std::string image_url(const Options& opts, const std::string& src, std::string& why) {
    std::string url;
    if (src.rfind("http://", 0) == 0 || src.rfind("https://", 0) == 0) url = src;
    else if (src.rfind("//", 0) == 0) url = opts.site.substr(0, opts.site.find("://") + 1) + src;
    else if (!src.empty() && src[0] == '/') url = opts.site.substr(0, opts.site.find('/', opts.site.find("://") + 3)) + src;
    else {
        why = src.rfind("data:", 0) == 0 ? "data: URL image not processed" : "relative src not resolvable";
        return {};
    }
    if (!opts.allow_external_images && host_of(url) != host_of(opts.site)) {
        why = "image on another host (use --allow-external-images)";
        return {};
    }
    return url;
}

Job download_job(const std::string& key, const std::string& url, const std::string& title) {
    Job job;
    job.key = key;
    job.title = title;
    job.load_image = [url](HttpClient& http, std::string& bytes, std::string& err) {
        HttpRequest req;
        req.url = url;
        req.max_response_bytes = size_t{20} << 20;
        HttpResponse res;
        http.perform(req, res);
        if (res.status != 200) {
            err = url + ": " + (res.status ? "HTTP " + std::to_string(res.status) : res.transport_error);
            return false;
        }
        bytes = std::move(res.body);
        return true;
    };
    return job;
}

// ---- core/image block comments -------------------------------------------------------------

// The `<!-- wp:image {...} -->` block an <img> sits in: its attachment id and, when the comment
// carries one, its "alt" attribute and the byte span of that JSON string (quotes included).
struct BlockInfo {
    bool in_block = false;
    long long id = 0;
    bool has_alt = false;
    std::string alt;
    size_t alt_begin = 0, alt_end = 0;
};

// Span of the top-level "alt" string value in a JSON object text (as WordPress serialises block
// attributes: keys are never escaped); false when absent or not a string.
bool find_top_level_alt(const std::string& text, size_t begin, size_t end, size_t& vb, size_t& ve) {
    int depth = 0;
    bool expect_key = false;
    std::string last_key;
    bool after_colon = false;
    for (size_t i = begin; i < end; ++i) {
        char c = text[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < end && text[j] != '"') j += text[j] == '\\' ? 2 : 1;
            if (j >= end) return false;
            if (depth == 1 && expect_key) {
                last_key = text.substr(i + 1, j - i - 1);
                expect_key = false;
            } else if (depth == 1 && after_colon && last_key == "alt") {
                vb = i;
                ve = j + 1;
                return true;
            }
            after_colon = false;
            i = j;
            continue;
        }
        if (c == '{' || c == '[') {
            ++depth;
            expect_key = depth == 1 && c == '{';
            after_colon = false;
        } else if (c == '}' || c == ']') {
            --depth;
        } else if (c == ',' && depth == 1) {
            expect_key = true;
            after_colon = false;
        } else if (c == ':' && depth == 1) {
            after_colon = true;
        } else if (!std::isspace(static_cast<unsigned char>(c))) {
            after_colon = false;
        }
    }
    return false;
}

BlockInfo block_around(const std::string& text, size_t pos) {
    BlockInfo info;
    static const std::string open = "<!-- wp:image", close = "<!-- /wp:image -->";
    size_t o = text.rfind(open, pos);
    while (o != std::string::npos) {
        char next = o + open.size() < text.size() ? text[o + open.size()] : '\0';
        if (next == ' ' || next == '/') break;  // not "wp:image-something"
        o = o == 0 ? std::string::npos : text.rfind(open, o - 1);
    }
    if (o == std::string::npos) return info;
    size_t open_end = text.find("-->", o);
    if (open_end == std::string::npos || open_end > pos) return info;
    size_t c = text.find(close, open_end);
    if (c == std::string::npos || c < pos) return info;
    info.in_block = true;
    size_t jb = text.find('{', o);
    if (jb == std::string::npos || jb > open_end) return info;
    size_t je = text.rfind('}', open_end);
    if (je == std::string::npos || je < jb) return info;
    json_t* attrs = json_loadb(text.data() + jb, je + 1 - jb, 0, nullptr);
    if (!attrs) return info;
    json_t* id = json_object_get(attrs, "id");
    if (json_is_integer(id)) info.id = json_integer_value(id);
    json_t* alt = json_object_get(attrs, "alt");
    if (json_is_string(alt) && find_top_level_alt(text, jb, je + 1, info.alt_begin, info.alt_end)) {
        info.has_alt = true;
        info.alt = std::string(json_string_value(alt), json_string_length(alt));
    }
    json_decref(attrs);
    return info;
}

// A JSON string as serialize_block_attributes() writes it: no raw -- < > & or \" in a comment.
std::string block_json_string(const std::string& s) {
    std::string out = "\"";
    char buf[8];
    for (unsigned char c : s) {
        if (c == '"' || c == '<' || c == '>' || c == '&' || c == '-' || c < 0x20) {
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else if (c == '\\') {
            out += "\\\\";
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    return out + "\"";
}

long long wp_image_class_id(const std::string& cls) {
    size_t p = 0;
    while ((p = cls.find("wp-image-", p)) != std::string::npos) {
        bool start = p == 0 || std::isspace(static_cast<unsigned char>(cls[p - 1]));
        size_t q = p + 9, e = q;
        while (e < cls.size() && std::isdigit(static_cast<unsigned char>(cls[e]))) ++e;
        if (start && e > q && (e == cls.size() || std::isspace(static_cast<unsigned char>(cls[e]))))
            return std::strtoll(cls.substr(q, e - q).c_str(), nullptr, 10);
        p = e;
    }
    return 0;
}

// ---- planning -------------------------------------------------------------------------------

enum class Action { keep, skip, copy_media, generate };

struct PlannedRef {
    ImageRef ref;
    BlockInfo block;
    long long attachment = 0;
    Action action = Action::keep;
    std::string status;   // for keep/skip rows: kept_human, updated_earlier, skipped
    std::string why;
    std::string key;      // generate: job key; copy_media: ""
    std::string url;      // generate: where the bytes come from
    std::string new_alt;  // copy_media: the media library's alt
};

struct Context {
    const Options& opts;
    Checkpoint& checkpoint;
    std::map<long long, WpItem> media;  // every attachment we know (listed or referenced)
};

std::string media_key(long long id) { return "media:" + std::to_string(id); }

// Decides for each <img> of a post what to do. Keys are stable across runs (attachment id, or
// post + src + occurrence) so --resume finds finished work after the post was re-read.
std::vector<PlannedRef> plan_post(const WpItem& item, const std::string& content, Context& cx) {
    std::vector<PlannedRef> plans;
    std::map<std::string, int> seen_src;
    for (const ImageRef& ref : find_images(content, false)) {
        PlannedRef p;
        p.ref = ref;
        p.block = block_around(content, ref.tag_begin);
        p.attachment = p.block.id ? p.block.id : wp_image_class_id(ref.cls);
        int occurrence = seen_src[ref.src]++;
        auto media = p.attachment ? cx.media.find(p.attachment) : cx.media.end();
        p.key = media != cx.media.end() ? media_key(p.attachment)
                                        : item.kind + ":" + std::to_string(item.id) + "#" + ref.src + "#"
                                              + std::to_string(occurrence);
        bool img_human = ref.has_alt && !is_weak_alt(ref.alt, ref.src);
        bool block_human = p.block.has_alt && !is_weak_alt(p.block.alt, ref.src);
        if (!cx.opts.overwrite && (img_human || block_human)) {
            std::string earlier;
            bool ours = img_human && cx.checkpoint.lookup(p.key, earlier) && earlier == ref.alt;
            p.status = ours ? "updated_earlier" : "kept_human";
            plans.push_back(p);
            continue;
        }
        if (media != cx.media.end()) {
            const WpItem& m = media->second;
            if (!cx.opts.overwrite && !is_weak_alt(m.alt_text, m.source_url)) {
                // The library already has a human description: use it here too, no request needed.
                p.action = Action::copy_media;
                p.new_alt = m.alt_text;
                p.why = "alt text copied from the media library";
            } else {
                p.action = Action::generate;
                p.url = m.fetch_url;
            }
            plans.push_back(p);
            continue;
        }
        std::string why;
        p.url = image_url(cx.opts, ref.src, why);
        if (p.url.empty()) {
            p.status = "skipped";
            p.why = why;
        } else {
            p.action = Action::generate;
        }
        plans.push_back(p);
    }
    return plans;
}

struct Span {
    size_t begin, end;
    std::string text;
};

// New content with the planned alts applied (img attribute and block comment alike) plus one
// report row per image. Generated alts come from `done` (key -> alt).
std::string apply_plan(const WpItem& item, const std::string& content, const std::vector<PlannedRef>& plans,
                       const std::map<std::string, std::string>& done, const std::map<std::string, std::string>& errors,
                       std::vector<ReportRow>& rows) {
    std::string doc = item.kind + " " + std::to_string(item.id);
    std::vector<Span> spans;
    for (const auto& p : plans) {
        ReportRow row{doc, p.ref.src, p.ref.line, p.status, p.ref.alt, "", p.why};
        std::string alt;
        if (p.action == Action::copy_media) {
            alt = p.new_alt;
        } else if (p.action == Action::generate) {
            auto it = done.find(p.key);
            if (it != done.end()) {
                alt = it->second;
            } else {
                auto e = errors.find(p.key);
                row.status = e != errors.end() ? "failed" : "not_attempted";
                row.message = e != errors.end() ? e->second : "image appeared during the run; run again";
            }
        }
        if (!alt.empty()) {
            row.status = "pending";
            row.new_alt = alt;
            std::string attr = "alt=\"" + escape_html_attr(alt) + "\"";
            spans.push_back({p.ref.alt_begin, p.ref.alt_end, p.ref.has_alt ? attr : " " + attr});
            if (p.block.has_alt) spans.push_back({p.block.alt_begin, p.block.alt_end, block_json_string(alt)});
        }
        rows.push_back(row);
    }
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
    std::string out;
    size_t at = 0;
    for (const auto& s : spans) {
        out.append(content, at, s.begin - at);
        out += s.text;
        at = s.end;
    }
    out.append(content, at, std::string::npos);
    return out;
}

std::string json_body(const char* field, const std::string& value) {
    json_t* body = json_object();
    json_object_set_new(body, field, json_stringn(value.data(), value.size()));
    char* text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    std::string out = text ? text : "";
    free(text);
    return out;
}

bool refetch(WpApi& wp, const WpItem& item, WpItem& now, std::string& err) {
    json_t* fresh = nullptr;
    wp.request("GET", wp.api(item.kind + "/" + std::to_string(item.id) + "?context=edit"), "", &fresh, err);
    bool ok = fresh && parse_item(fresh, item.kind, now);
    if (fresh && !ok) err = "unexpected response";
    json_decref(fresh);
    return ok;
}

void finish_rows(std::vector<ReportRow>& item_rows, const std::string& outcome, const std::string& message,
                 std::vector<ReportRow>& rows) {
    for (auto& r : item_rows) {
        if (r.status == "pending") {
            r.status = outcome;
            if (!message.empty()) r.message = r.message.empty() ? message : r.message + "; " + message;
        }
        rows.push_back(r);
    }
}

const int kWriteAttempts = 3;

// Writes one post: re-read; unchanged -> write; changed -> plan again on the fresh content with
// the alts we already have and retry. Returns the rows for the report.
void write_post(WpApi& wp, Context& cx, const WpItem& item, const std::map<std::string, std::string>& done,
                const std::map<std::string, std::string>& errors, std::vector<ReportRow>& rows) {
    WpItem base = item;
    std::vector<PlannedRef> plans = plan_post(base, base.content_raw, cx);
    std::map<std::string, std::string> alt_as_read;
    for (const auto& p : plans) alt_as_read[p.key] = p.ref.alt;
    bool merged = false;
    for (int attempt = 0; attempt < kWriteAttempts; ++attempt) {
        std::vector<ReportRow> item_rows;
        std::string updated = apply_plan(base, base.content_raw, plans, done, errors, item_rows);
        if (updated == base.content_raw) {
            finish_rows(item_rows, "updated", "already had this alt text", rows);
            return;
        }
        WpItem now;
        std::string err;
        if (!refetch(wp, base, now, err)) {
            finish_rows(item_rows, "failed", "re-read before writing failed: " + err, rows);
            return;
        }
        if (now.modified_gmt != base.modified_gmt || now.content_raw != base.content_raw) {
            // Someone saved the post since we read it: start again from their version.
            if (!cx.opts.quiet)
                std::fprintf(stderr, "vlm-bulk: %s %lld changed during the run (modified_gmt %s -> %s); merging\n",
                             item.kind.c_str(), item.id, base.modified_gmt.c_str(), now.modified_gmt.c_str());
            base = now;
            plans = plan_post(base, base.content_raw, cx);
            // Even with --overwrite, an alt someone typed during the run is theirs to keep.
            for (auto& p : plans) {
                auto was = alt_as_read.find(p.key);
                bool edited = was == alt_as_read.end() || was->second != p.ref.alt;
                if (p.action != Action::keep && edited && p.ref.has_alt && !is_weak_alt(p.ref.alt, p.ref.src)) {
                    p.action = Action::keep;
                    p.status = "kept_human";
                    p.why = "written during the run";
                }
            }
            merged = true;
            continue;
        }
        json_t* result = nullptr;
        wp.request("POST", wp.api(item.kind + "/" + std::to_string(item.id)), json_body("content", updated), &result,
                   err);
        std::string message = merged ? "merged with an edit made during the run" : "";
        if (!result) {
            finish_rows(item_rows, "failed", "update failed: " + err, rows);
            return;
        }
        if (str_at(result, "content", "raw") != updated)
            message += std::string(message.empty() ? "" : "; ") + "WordPress altered the content when saving";
        json_decref(result);
        finish_rows(item_rows, "updated", message, rows);
        return;
    }
    std::vector<ReportRow> item_rows;
    apply_plan(base, base.content_raw, plans, done, errors, item_rows);
    finish_rows(item_rows, "conflict",
                "kept changing while we tried to write (" + std::to_string(kWriteAttempts) + " tries); not written",
                rows);
}

}  // namespace

int run_wordpress_mode(const Options& opts) {
    Checkpoint checkpoint(opts.state, "wordpress:" + opts.site);
    int rc = prepare_checkpoint(opts, checkpoint);
    if (rc >= 0) return rc;
    std::string host = host_of(opts.site);
    if (opts.site.rfind("http://", 0) == 0 && host.rfind("localhost", 0) != 0 && host.rfind("127.0.0.1", 0) != 0)
        std::fprintf(stderr, "vlm-bulk: warning: sending the application password over plain http to %s\n",
                     host.c_str());
    WpApi wp{opts, {}};
    Context cx{opts, checkpoint, {}};
    {
        // Sites on "Plain" permalinks have no /wp-json/ route; the REST API is still reachable.
        json_t* index = nullptr;
        std::string err;
        long st = wp.request("GET", wp.api(""), "", &index, err);
        json_decref(index);
        if (st == 0) {
            std::fprintf(stderr, "vlm-bulk: WordPress unreachable: %s\n", err.c_str());
            return exit_service;
        }
        if (st == 404 || st == -1) {
            wp.plain_permalinks = true;
            st = wp.request("GET", wp.api(""), "", &index, err);
            json_decref(index);
            if (st != 200 && st != 401 && st != 403) {
                wp.plain_permalinks = false;
                std::fprintf(stderr, "vlm-bulk: %s does not answer the WordPress REST API (%s)\n",
                             opts.site.c_str(), err.c_str());
                return exit_service;
            }
        }
    }
    std::string filter = opts.search.empty() ? "" : "&search=" + url_escape(opts.search);
    std::vector<WpItem> listed_media, posts;
    if (opts.media && (rc = list_all(wp, "media", filter, listed_media)) >= 0) return rc;
    for (const auto& type : opts.post_types)
        if ((rc = list_all(wp, type, filter, posts)) >= 0) return rc;
    for (const auto& m : listed_media) cx.media[m.id] = m;

    // Attachments that posts link to but the listing did not return (--no-media, --search).
    std::set<long long> missing;
    for (const auto& post : posts)
        for (const ImageRef& ref : find_images(post.content_raw, false)) {
            BlockInfo b = block_around(post.content_raw, ref.tag_begin);
            long long id = b.id ? b.id : wp_image_class_id(ref.cls);
            if (id > 0 && !cx.media.count(id)) missing.insert(id);
        }
    while (!missing.empty()) {
        std::string ids;
        for (auto it = missing.begin(); it != missing.end() && ids.size() < 1500;) {
            ids += (ids.empty() ? "" : ",") + std::to_string(*it);
            it = missing.erase(it);
        }
        std::vector<WpItem> more;
        if ((rc = list_all(wp, "media", "&include=" + ids, more)) >= 0) return rc;
        for (auto& m : more) cx.media[m.id] = m;
    }

    // Jobs, one per distinct key: a media item and its copies in posts share one request.
    std::vector<Job> jobs;
    std::map<std::string, size_t> job_of_key;
    auto add_job = [&](const std::string& key, const std::string& url, const std::string& title) {
        if (job_of_key.count(key)) return;
        job_of_key[key] = jobs.size();
        jobs.push_back(download_job(key, url, title));
    };
    std::vector<ReportRow> rows;
    std::vector<const WpItem*> media_to_write;
    for (const auto& m : listed_media) {
        std::string doc = "media " + std::to_string(m.id);
        if (!opts.overwrite && !is_weak_alt(m.alt_text, m.source_url)) {
            std::string earlier;
            bool ours = checkpoint.lookup(media_key(m.id), earlier) && earlier == m.alt_text;
            rows.push_back({doc, m.source_url, 0, ours ? "updated_earlier" : "kept_human", m.alt_text, "", ""});
            continue;
        }
        if (m.source_url.empty()) {
            rows.push_back({doc, "", 0, "skipped", m.alt_text, "", "no source_url"});
            continue;
        }
        add_job(media_key(m.id), m.fetch_url, m.title);
        media_to_write.push_back(&m);
    }
    size_t post_images = 0;
    for (const auto& post : posts)
        for (const auto& p : plan_post(post, post.content_raw, cx)) {
            ++post_images;
            if (p.action == Action::generate) add_job(p.key, p.url, post.title);
        }
    if (!opts.quiet)
        std::fprintf(stderr, "vlm-bulk: %zu media items, %zu posts with %zu images; %zu images to describe\n",
                     listed_media.size(), posts.size(), post_images, jobs.size());

    RunSummary summary;
    if (!jobs.empty()) {
        VlmSettings settings = settings_from(opts);
        if ((rc = preflight_service(settings)) >= 0) return rc;
        summary = run_jobs(jobs, settings, checkpoint, opts.concurrency, opts.progress_every, opts.quiet);
    }
    std::map<std::string, std::string> done, errors;
    for (size_t j = 0; j < jobs.size(); ++j) {
        const JobOutcome& o = summary.outcomes[j];
        if (o.state == JobState::generated || o.state == JobState::resumed) done[jobs[j].key] = o.alt;
        else if (o.state == JobState::failed) errors[jobs[j].key] = o.error;
    }
    if (summary.fatal) return finish_run(opts, rows, summary, checkpoint);  // state kept; nothing written

    for (const WpItem* m : media_to_write) {
        std::string doc = "media " + std::to_string(m->id);
        ReportRow row{doc, m->source_url, 0, "", m->alt_text, "", ""};
        auto it = done.find(media_key(m->id));
        if (it == done.end()) {
            auto e = errors.find(media_key(m->id));
            row.status = e != errors.end() ? "failed" : "not_attempted";
            if (e != errors.end()) row.message = e->second;
            rows.push_back(row);
            continue;
        }
        row.new_alt = it->second;
        if (opts.dry_run) {
            std::printf("--- a/%s alt_text\n+++ b/%s alt_text\n-%s\n+%s\n", doc.c_str(), doc.c_str(),
                        m->alt_text.c_str(), it->second.c_str());
            row.status = "would_update";
            rows.push_back(row);
            continue;
        }
        // Only alt_text is sent, so other edits to the attachment are never overwritten; the
        // one thing that must not have changed since the read is the alt itself.
        WpItem now;
        std::string err;
        if (!refetch(wp, *m, now, err)) {
            row.status = "failed";
            row.message = "re-read before writing failed: " + err;
        } else if (now.alt_text != m->alt_text && !is_weak_alt(now.alt_text, now.source_url)) {
            row.status = "conflict";
            row.message = "alt text was edited during the run; kept the new one: " + now.alt_text;
        } else {
            json_t* result = nullptr;
            wp.request("POST", wp.api("media/" + std::to_string(m->id)), json_body("alt_text", it->second), &result,
                       err);
            row.status = result ? "updated" : "failed";
            if (!result) row.message = "update failed: " + err;
            json_decref(result);
        }
        rows.push_back(row);
    }

    for (const auto& post : posts) {
        if (opts.dry_run) {
            std::vector<ReportRow> item_rows;
            std::string updated = apply_plan(post, post.content_raw, plan_post(post, post.content_raw, cx), done,
                                             errors, item_rows);
            print_preview(post.kind + " " + std::to_string(post.id), post.content_raw, updated);
            finish_rows(item_rows, "would_update", "", rows);
            continue;
        }
        std::vector<PlannedRef> plans = plan_post(post, post.content_raw, cx);
        bool pending = false;
        for (const auto& p : plans)
            pending |= p.action == Action::copy_media || (p.action == Action::generate && done.count(p.key));
        if (!pending) {
            std::vector<ReportRow> item_rows;
            apply_plan(post, post.content_raw, plans, done, errors, item_rows);
            rows.insert(rows.end(), item_rows.begin(), item_rows.end());
            continue;
        }
        write_post(wp, cx, post, done, errors, rows);
    }
    return finish_run(opts, rows, summary, checkpoint);
}

}  // namespace vlm::bulk
