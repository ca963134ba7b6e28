// `vlm-bulk files DIR`: Markdown and HTML files under DIR, edited in place (with .orig
// backups) or written to --out DIR.
// Leaves out: remote images (reported as skipped), images outside DIR, symlinked directories.
#pragma once
#include "options.h"

namespace vlm::bulk {

int run_files_mode(const Options& opts);

}  // namespace vlm::bulk
