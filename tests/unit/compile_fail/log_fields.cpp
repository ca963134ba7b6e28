// log_fields.cpp: what util/log.h must refuse at compile time. Built once per
// CASE by tests/unit/compile_fail/check.cmake: CASE 0 uses every accepted
// field type and must compile (so a failure below is the refusal, not a
// broken include path); every other CASE passes text made at run time, as
// a request's prompt or header would be, and must not compile.
#include "util/log.h"

#include <string>

void probe(vlm::Logger &log, const std::string &prompt, const char *header, std::string_view view)
{
#if CASE == 0
    (void)prompt;
    (void)header;
    (void)view;
    log.info("event", {{"word", "fixed"}, {"n", 42}, {"big", uint64_t(1) << 40}, {"ms", 1.5}, {"ok", true},
                       {"id", vlm::LogHex{7}}, {"error", vlm::LogErrno{2}},
                       {"path", vlm::OperatorText("/etc/vlm")}});
#elif CASE == 1
    log.info("event", {{"prompt", prompt}});            // a std::string
#elif CASE == 2
    log.info("event", {{"authorization", header}});     // a char pointer computed at run time
#elif CASE == 3
    log.info("event", {{"text", view}});                // a string_view
#elif CASE == 4
    log.info("event", {{"text", prompt.c_str()}});      // a std::string's characters
#elif CASE == 5
    log.info("event", {{"byte", prompt[0]}});           // a character of request text
#elif CASE == 6
    const char *key = header;                           // a key chosen at run time
    log.info("event", {{key, 1}});
#elif CASE == 7
    log.info(header, {});                               // an event name chosen at run time
#endif
}
