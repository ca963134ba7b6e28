// WordPress REST client for bulk alt text: list (paged), generate, re-fetch, compare, update.
// Leaves out: an atomic compare-and-set (WordPress has no If-Match; the re-fetch narrows the race
// to the time between two requests).
#include "wordpress_mode.h"

#include <jansson.h>

#include <cstdio>
#include <map>

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
    std::vector<ImageRef> refs;
    std::vector<size_t> job_of_ref;
    size_t media_job = SIZE_MAX;
};

struct WpApi {
    const Options& opts;
    HttpClient http;

    std::string api(const std::string& path) const { return opts.site + "/wp-json/wp/v2/" + path; }

    // status 0 = transport failure. Parsed JSON (owned by caller) on 2xx.
    long request(const std::string& method, const std::string& url, const std::string& body, json_t** out,
                 std::string& err, std::map<std::string, std::string>* headers = nullptr) {
        HttpRequest req;
        req.method = method;
        req.url = url;
        req.basic_auth = opts.user + ":" + opts.app_password;
        req.headers = {"Accept: application/json"};
        if (!body.empty()) {
            req.headers.push_back("Content-Type: application/json");
            req.body = body;
        }
        HttpResponse res;
        http.perform(req, res);
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
    return json_is_string(v) ? json_string_value(v) : "";
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
    } else {
        item.content_raw = str_at(o, "content", "raw");
    }
    return true;
}

// Lists every item of a collection, page by page.
int list_all(WpApi& wp, const std::string& kind, std::vector<WpItem>& items) {
    std::string query = kind == "media" ? "media?context=edit&media_type=image&per_page=100"
                                        : kind + "?context=edit&per_page=100&status=publish,future,draft,pending,private";
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
        if (!arr) {
            std::fprintf(stderr, "vlm-bulk: WordPress: %s\n", err.c_str());
            return exit_some_failed;
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
    std::vector<WpItem> items;
    if (opts.media && (rc = list_all(wp, "media", items)) >= 0) return rc;
    for (const auto& type : opts.post_types)
        if ((rc = list_all(wp, type, items)) >= 0) return rc;

    std::vector<Job> jobs;
    std::vector<ReportRow> rows;
    for (auto& item : items) {
        std::string doc = item.kind + " " + std::to_string(item.id);
        if (item.kind == "media") {
            if (!opts.overwrite && !is_weak_alt(item.alt_text, item.source_url)) {
                rows.push_back({doc, item.source_url, 0, "kept_human", item.alt_text, "", ""});
                continue;
            }
            item.media_job = jobs.size();
            jobs.push_back(download_job("media:" + std::to_string(item.id), item.source_url, item.title));
            continue;
        }
        item.refs = find_images(item.content_raw, false);
        item.job_of_ref.assign(item.refs.size(), SIZE_MAX);
        for (size_t i = 0; i < item.refs.size(); ++i) {
            const ImageRef& ref = item.refs[i];
            if (!opts.overwrite && ref.has_alt && !is_weak_alt(ref.alt, ref.src)) {
                rows.push_back({doc, ref.src, ref.line, "kept_human", ref.alt, "", ""});
                continue;
            }
            std::string why;
            std::string url = image_url(opts, ref.src, why);
            if (url.empty()) {
                rows.push_back({doc, ref.src, ref.line, "skipped", ref.alt, "", why});
                continue;
            }
            item.job_of_ref[i] = jobs.size();
            jobs.push_back(download_job(item.kind + ":" + std::to_string(item.id) + "#" + std::to_string(i) + "#" + ref.src,
                                        url, item.title));
        }
    }

    RunSummary summary;
    if (!jobs.empty()) {
        VlmSettings settings = settings_from(opts);
        if ((rc = preflight_service(settings)) >= 0) return rc;
        summary = run_jobs(jobs, settings, checkpoint, opts.concurrency, opts.progress_every, opts.quiet);
    }

    for (auto& item : items) {
        std::string doc = item.kind + " " + std::to_string(item.id);
        std::vector<AltEdit> edits;
        std::vector<ReportRow> item_rows;
        if (item.kind == "media" && item.media_job != SIZE_MAX) {
            const JobOutcome& o = summary.outcomes[item.media_job];
            ReportRow row{doc, item.source_url, 0, "", item.alt_text, o.alt, o.error};
            bool ok = o.state == JobState::generated || o.state == JobState::resumed;
            row.status = ok ? "pending" : o.state == JobState::failed ? "failed" : "not_attempted";
            item_rows.push_back(row);
        }
        for (size_t i = 0; i < item.refs.size(); ++i) {
            size_t j = item.job_of_ref[i];
            if (j == SIZE_MAX) continue;
            const JobOutcome& o = summary.outcomes[j];
            ReportRow row{doc, item.refs[i].src, item.refs[i].line, "", item.refs[i].alt, o.alt, o.error};
            if (o.state == JobState::generated || o.state == JobState::resumed) {
                edits.push_back({&item.refs[i], o.alt});
                row.status = "pending";
            } else {
                row.status = o.state == JobState::failed ? "failed" : "not_attempted";
            }
            item_rows.push_back(row);
        }
        bool pending = false;
        for (const auto& r : item_rows) pending |= r.status == "pending";
        if (!pending) {
            rows.insert(rows.end(), item_rows.begin(), item_rows.end());
            continue;
        }
        std::string new_alt = item.kind == "media" ? summary.outcomes[item.media_job].alt : "";
        std::string new_content = item.kind == "media" ? "" : apply_alt_edits(item.content_raw, edits);
        std::string outcome, message;
        if (opts.dry_run) {
            if (item.kind == "media") std::printf("--- %s alt_text\n-%s\n+%s\n", doc.c_str(), item.alt_text.c_str(), new_alt.c_str());
            else print_preview(doc, item.content_raw, new_content);
            outcome = "would_update";
        } else {
            // Optimistic concurrency: re-read, and write only if nobody changed the item meanwhile.
            std::string url = wp.api(item.kind + "/" + std::to_string(item.id));
            json_t* fresh = nullptr;
            std::string err;
            long st = wp.request("GET", url + "?context=edit", "", &fresh, err);
            WpItem now;
            if (!fresh || !parse_item(fresh, item.kind, now)) {
                outcome = "failed";
                message = "re-fetch failed: " + err;
            } else if (now.modified_gmt != item.modified_gmt || now.content_raw != item.content_raw
                       || now.alt_text != item.alt_text) {
                outcome = "conflict";
                message = "changed since read (modified_gmt " + item.modified_gmt + " -> " + now.modified_gmt + ")";
            } else {
                json_t* body = json_object();
                if (item.kind == "media") json_object_set_new(body, "alt_text", json_string(new_alt.c_str()));
                else json_object_set_new(body, "content", json_stringn(new_content.data(), new_content.size()));
                char* text = json_dumps(body, JSON_COMPACT);
                json_decref(body);
                json_t* result = nullptr;
                st = text ? wp.request("POST", url, text, &result, err) : -1;
                free(text);
                outcome = result ? "updated" : "failed";
                if (!result) message = "update failed: " + err;
                json_decref(result);
            }
            json_decref(fresh);
            (void)st;
        }
        for (auto& r : item_rows) {
            if (r.status == "pending") {
                r.status = outcome;
                if (!message.empty()) r.message = message;
            }
            rows.push_back(r);
        }
    }
    return finish_run(opts, rows, summary, checkpoint);
}

}  // namespace vlm::bulk
