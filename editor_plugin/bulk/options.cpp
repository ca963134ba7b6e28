// Hand-rolled option parsing (no getopt_long global state), with range checks.
// Leaves out: abbreviations of long options.
#include "options.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace vlm::bulk {

const char* usage_text() {
    return "usage: vlm-bulk files DIR [--out DIR] [--static-dir D]... [--fetch-remote] [common options]\n"
           "       site-root srcs (/img/x.png) are looked up in DIR, then each --static-dir D\n"
           "       (relative to DIR), then DIR/static and DIR/public; never outside DIR.\n"
           "       http(s) images are skipped unless --fetch-remote (30 s, 5 redirects, 20 MiB;\n"
           "       never during --dry-run)\n"
           "       vlm-bulk wordpress --site URL --user U --app-password P|--app-password-file F\n"
           "                [--types posts,pages] [--search TEXT]"
           " [--no-media] [--allow-external-images] [common options]\n"
           "       (secrets may also come from VLM_API_KEY and WP_APP_PASSWORD)\n"
           "       --search limits media and posts to a WordPress search; posts changed while the\n"
           "       tool runs are merged (the author's alts win) or reported as conflicts\n"
           "common: --endpoint URL (default http://127.0.0.1:8080) --api-key KEY | --api-key-file F\n"
           "        --language auto|en|zh --max-length N (125) --dry-run --overwrite\n"
           "        --resume --state FILE (.vlm-bulk-state.json) --concurrency N (2)\n"
           "        --report FILE.csv|FILE.json --max-retries N (5) --progress-every N (10) --quiet\n"
           "exit: 0 all done, 1 some items failed or conflicted, 2 bad usage,\n"
           "      3 service unreachable or authentication failed\n";
}

namespace {

bool parse_int(const std::string& s, long lo, long hi, long& out) {
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0 || v < lo || v > hi) return false;
    out = v;
    return true;
}

std::string trim_line(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

bool parse_options(int argc, char** argv, Options& o, bool& help, std::string& err) {
    help = false;
    if (argc < 2) {
        err = "missing mode (files or wordpress)";
        return false;
    }
    std::string mode = argv[1];
    if (mode == "-h" || mode == "--help") {
        help = true;
        return true;
    }
    if (mode == "files") o.mode = Mode::files;
    else if (mode == "wordpress") o.mode = Mode::wordpress;
    else {
        err = "unknown mode '" + mode + "' (files or wordpress)";
        return false;
    }
    std::string api_key_file, app_password_file;
    std::string files_only;  // the last files-mode-only option given
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&](std::string& dst) {
            if (i + 1 >= argc) {
                err = a + " needs a value";
                return false;
            }
            dst = argv[++i];
            return true;
        };
        auto int_value = [&](long lo, long hi, long& dst) {
            std::string s;
            if (!value(s)) return false;
            if (!parse_int(s, lo, hi, dst)) {
                err = a + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
                return false;
            }
            return true;
        };
        long n = 0;
        if (a == "-h" || a == "--help") { help = true; return true; }
        else if (a == "--out") { if (!value(o.out_dir)) return false; }
        else if (a == "--static-dir") {
            std::string d;
            if (!value(d)) return false;
            if (d.empty()) { err = "--static-dir needs a directory"; return false; }
            o.static_dirs.push_back(d);
            files_only = a;
        }
        else if (a == "--fetch-remote") { o.fetch_remote = true; files_only = a; }
        else if (a == "--site") { if (!value(o.site)) return false; }
        else if (a == "--user") { if (!value(o.user)) return false; }
        else if (a == "--app-password") { if (!value(o.app_password)) return false; }
        else if (a == "--app-password-file") { if (!value(app_password_file)) return false; }
        else if (a == "--types") {
            std::string s;
            if (!value(s)) return false;
            o.post_types.clear();
            std::stringstream ss(s);
            std::string t;
            while (std::getline(ss, t, ','))
                if (!t.empty()) o.post_types.push_back(t);
            for (const auto& t2 : o.post_types)
                for (char c : t2)
                    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) {
                        err = "--types: '" + t2 + "' is not a REST base name";
                        return false;
                    }
        }
        else if (a == "--search") { if (!value(o.search)) return false; }
        else if (a == "--no-media") o.media = false;
        else if (a == "--allow-external-images") o.allow_external_images = true;
        else if (a == "--endpoint") { if (!value(o.endpoint)) return false; }
        else if (a == "--api-key") { if (!value(o.api_key)) return false; }
        else if (a == "--api-key-file") { if (!value(api_key_file)) return false; }
        else if (a == "--language") {
            if (!value(o.language)) return false;
            if (o.language != "auto" && o.language != "en" && o.language != "zh") {
                err = "--language must be auto, en or zh";
                return false;
            }
        }
        else if (a == "--max-length") { if (!int_value(1, 1000, n)) return false; o.max_length = static_cast<int>(n); }
        else if (a == "--dry-run") o.dry_run = true;
        else if (a == "--overwrite") o.overwrite = true;
        else if (a == "--resume") o.resume = true;
        else if (a == "--state") { if (!value(o.state)) return false; }
        else if (a == "--concurrency") { if (!int_value(1, 64, n)) return false; o.concurrency = static_cast<int>(n); }
        else if (a == "--report") { if (!value(o.report)) return false; }
        else if (a == "--max-retries") { if (!int_value(0, 20, n)) return false; o.max_retries = static_cast<int>(n); }
        else if (a == "--progress-every") { if (!int_value(1, 1000000, n)) return false; o.progress_every = static_cast<size_t>(n); }
        else if (a == "--quiet") o.quiet = true;
        else if (!a.empty() && a[0] == '-') { err = "unknown option " + a; return false; }
        else if (o.mode == Mode::files && o.dir.empty()) o.dir = a;
        else { err = "unexpected argument " + a; return false; }
    }
    if (!api_key_file.empty()) {
        std::ifstream f(api_key_file);
        if (!f) { err = "--api-key-file: cannot read " + api_key_file; return false; }
        std::getline(f, o.api_key);
        o.api_key = trim_line(o.api_key);
    }
    if (!app_password_file.empty()) {
        std::ifstream f(app_password_file);
        if (!f) { err = "--app-password-file: cannot read " + app_password_file; return false; }
        std::getline(f, o.app_password);
        o.app_password = trim_line(o.app_password);
    }
    if (o.app_password.empty()) {
        const char* env = std::getenv("WP_APP_PASSWORD");
        if (env) o.app_password = env;
    }
    if (o.api_key.empty()) {
        const char* env = std::getenv("VLM_API_KEY");
        if (env) o.api_key = env;
    }
    if (o.api_key.empty()) { err = "an API key is required (--api-key, --api-key-file or VLM_API_KEY)"; return false; }
    if (o.mode == Mode::files && o.dir.empty()) { err = "files mode needs a DIR"; return false; }
    if (o.mode != Mode::files && !files_only.empty()) {
        err = files_only + " applies to files mode only (wordpress mode: --allow-external-images)";
        return false;
    }
    if (o.mode == Mode::wordpress) {
        if (o.site.empty() || o.user.empty() || o.app_password.empty()) {
            err = "wordpress mode needs --site, --user and --app-password (or --app-password-file)";
            return false;
        }
        if (o.site.rfind("http://", 0) != 0 && o.site.rfind("https://", 0) != 0) {
            err = "--site must start with http:// or https://";
            return false;
        }
        while (!o.site.empty() && o.site.back() == '/') o.site.pop_back();
    }
    if (!o.report.empty()) {
        auto ends = [&](const char* s) {
            std::string t(s);
            return o.report.size() >= t.size() && o.report.compare(o.report.size() - t.size(), t.size(), t) == 0;
        };
        if (!ends(".csv") && !ends(".json")) { err = "--report must end in .csv or .json"; return false; }
    }
    return true;
}

}  // namespace vlm::bulk
