// CSV (RFC 4180 quoting) or JSON array report.
// Leaves out: streaming; the report is written once at the end.
#include "report.h"

#include <jansson.h>

#include <cstdio>

namespace vlm::bulk {

namespace {

std::string csv_field(const std::string& s) {
    bool quote = s.find_first_of(",\"\r\n") != std::string::npos;
    if (!quote) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

bool ends_with(const std::string& s, const char* suffix) {
    std::string t(suffix);
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

}  // namespace

bool write_report(const std::string& path, const std::vector<ReportRow>& rows, std::string& err) {
    std::string text;
    if (ends_with(path, ".json")) {
        json_t* arr = json_array();
        for (const auto& r : rows) {
            json_t* o = json_object();
            json_object_set_new(o, "document", json_string(r.document.c_str()));
            json_object_set_new(o, "src", json_string(r.src.c_str()));
            json_object_set_new(o, "line", json_integer(static_cast<json_int_t>(r.line)));
            json_object_set_new(o, "status", json_string(r.status.c_str()));
            json_object_set_new(o, "old_alt", json_string(r.old_alt.c_str()));
            json_object_set_new(o, "new_alt", json_string(r.new_alt.c_str()));
            json_object_set_new(o, "message", json_string(r.message.c_str()));
            json_array_append_new(arr, o);
        }
        char* dumped = json_dumps(arr, JSON_INDENT(2));
        json_decref(arr);
        if (!dumped) {
            err = path + ": could not encode report";
            return false;
        }
        text = dumped;
        text += "\n";
        free(dumped);
    } else if (ends_with(path, ".csv")) {
        text = "document,src,line,status,old_alt,new_alt,message\n";
        for (const auto& r : rows) {
            text += csv_field(r.document) + "," + csv_field(r.src) + "," + std::to_string(r.line) + ","
                    + csv_field(r.status) + "," + csv_field(r.old_alt) + "," + csv_field(r.new_alt) + ","
                    + csv_field(r.message) + "\n";
        }
    } else {
        err = path + ": report must end in .csv or .json";
        return false;
    }
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) {
        err = path + ": cannot create";
        return false;
    }
    bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    ok = std::fclose(f) == 0 && ok;
    if (!ok) err = path + ": write failed";
    return ok;
}

}  // namespace vlm::bulk
