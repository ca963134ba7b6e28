// task_service.cpp: see task_service.h.
#include "tasks/task_service.h"
#include "tasks/postprocess.h"

#include <utility>

namespace vlm {

bool run_task(const TaskTemplates *templates, const TaskParams &params, ChatRequest &req,
              EventSink &reply, std::string &err)
{
    if (!templates) {
        err = std::string("task \"") + task_kind_name(params.kind) +
              "\" is not available: vlmd has no prompt templates";
        return false;
    }
    ResolvedTask resolved;
    if (!build_task_request(*templates, params, req, resolved, err)) return false;
    reply = task_answer_sink(resolved, std::move(reply));
    return true;
}

EventSink task_answer_sink(const ResolvedTask &task, EventSink reply)
{
    return [task, reply = std::move(reply)](const EngineEvent &ev) {
        if (ev.kind == EngineEvent::DELTA) return;
        if (ev.kind == EngineEvent::ERROR) {
            reply(ev);
            return;
        }
        // DONE (also "cancelled" and "deadline": what was written so far,
        // cleaned like a complete answer).
        EngineEvent done = ev;
        done.text = postprocess_task_output(task.kind, task.language, ev.text, task.max_chars);
        done.whole_answer = true;
        done.language = task_language_name(task.language);
        reply(done);
    };
}

}  // namespace vlm
