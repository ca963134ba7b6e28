// Final per-image report written as CSV or JSON (chosen by the file extension).
// Leaves out: HTML reports.
#pragma once
#include <string>
#include <vector>

namespace vlm::bulk {

struct ReportRow {
    std::string document;   // file path or "post 12" / "media 34"
    std::string src;
    size_t line = 0;
    std::string status;     // updated, would_update, kept_human, skipped, failed, conflict, not_attempted
    std::string old_alt;
    std::string new_alt;
    std::string message;
};

bool write_report(const std::string& path, const std::vector<ReportRow>& rows, std::string& err);

}  // namespace vlm::bulk
