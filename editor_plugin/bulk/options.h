// Command line of vlm-bulk: `files DIR` or `wordpress --site ...` plus the common options.
// Leaves out: config files; everything comes from argv (and --api-key-file).
#pragma once
#include <string>
#include <vector>

namespace vlm::bulk {

enum class Mode { files, wordpress };

struct Options {
    Mode mode = Mode::files;
    // files
    std::string dir;
    std::string out_dir;
    std::vector<std::string> static_dirs;  // --static-dir (repeatable, relative to dir): where
                                           //   site-root srcs (/images/x.png) may also live
    bool fetch_remote = false;             // download http(s) images instead of skipping them
    // wordpress
    std::string site;
    std::string user;
    std::string app_password;
    std::vector<std::string> post_types = {"posts", "pages"};
    bool media = true;
    bool allow_external_images = false;
    std::string search;   // only items matching this WordPress search (title/content/file name)
    // common
    std::string endpoint = "http://127.0.0.1:8080";
    std::string api_key;
    std::string language = "auto";
    int max_length = 125;
    bool dry_run = false;
    bool overwrite = false;
    bool resume = false;
    std::string state = ".vlm-bulk-state.json";
    int concurrency = 2;
    std::string report;
    int max_retries = 5;
    size_t progress_every = 10;
    bool quiet = false;
};

// false + err for bad usage (the caller exits 2); help sets `help` and returns true.
bool parse_options(int argc, char** argv, Options& opts, bool& help, std::string& err);
const char* usage_text();

}  // namespace vlm::bulk
