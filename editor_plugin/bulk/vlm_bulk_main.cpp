// vlm-bulk: bulk alt text for Markdown/HTML sites and WordPress through vlm's /v1/alt-text.
// Leaves out: SEO descriptions via /v1/summary (not yet wired).
#include <curl/curl.h>

#include <cstdio>

#include "files_mode.h"
#include "options.h"
#include "run_common.h"
#include "wordpress_mode.h"

int main(int argc, char** argv) {
    using namespace vlm::bulk;
    Options opts;
    bool help = false;
    std::string err;
    if (!parse_options(argc, argv, opts, help, err)) {
        std::fprintf(stderr, "vlm-bulk: %s\n%s", err.c_str(), usage_text());
        return exit_usage;
    }
    if (help) {
        std::fputs(usage_text(), stdout);
        return exit_ok;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        std::fprintf(stderr, "vlm-bulk: libcurl initialisation failed\n");
        return exit_service;
    }
    int rc = opts.mode == Mode::files ? run_files_mode(opts) : run_wordpress_mode(opts);
    curl_global_cleanup();
    return rc;
}
