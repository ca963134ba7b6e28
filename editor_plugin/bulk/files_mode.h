// `vlm-bulk files DIR`: Markdown and HTML files under DIR, edited in place (with .orig
// backups) or written to --out DIR.
// Site-root srcs are also looked up under --static-dir and DIR/static, DIR/public; http(s)
// images are downloaded with --fetch-remote (and reported as skipped without it).
// Leaves out: images outside DIR, symlinked directories.
#pragma once
#include "options.h"

namespace vlm::bulk {

int run_files_mode(const Options& opts);

}  // namespace vlm::bulk
