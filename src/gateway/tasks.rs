//! Experimental tasks (MCP 2025-11-25): task ids from different backends must not collide,
//! so every task id a backend reports is shown to the client as `BACKEND__TASKID`, and the
//! client's `tasks/get`, `tasks/result` and `tasks/cancel` are routed back by that prefix.
//!
//! Task ids appear only at places the protocol defines, and only those are rewritten: a
//! `taskId` inside a tool's own arguments or content is user data and is left alone.

use super::{lists, Gateway, PendingKind, SessionId};
use crate::wire::ids::RawId;
use crate::wire::message::{
    span_of, splice, write_error, write_result, Message, Raw, INVALID_PARAMS,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::ops::Range;
use std::time::Instant;

/// Between a backend's name and its own task id in the task ids the client sees.
pub(super) const TASK_SEPARATOR: &str = "__";

/// The most tasks whose owner and state gangway remembers; beyond it the oldest are
/// forgotten (their ids then become visible to every session, as before sessions).
pub(super) const MAX_TRACKED_TASKS: usize = 4096;

/// Who created a task, and whether it is still running.
#[derive(Debug, Clone, Copy)]
pub(super) struct TaskInfo {
    /// The session that created it; only that session sees its id.
    pub owner: SessionId,
    /// It has not reached `completed`, `failed` or `cancelled`: its backend is kept.
    pub running: bool,
}

/// The tasks gangway knows, by (backend, the backend's own task id), oldest first.
#[derive(Debug, Default)]
pub(super) struct Tasks {
    by_id: std::collections::HashMap<(usize, String), TaskInfo>,
    order: std::collections::VecDeque<(usize, String)>,
}

impl Tasks {
    /// Remembers a task created by `owner`.
    pub fn created(&mut self, b: usize, id: String, owner: SessionId, running: bool) {
        let key = (b, id);
        if self
            .by_id
            .insert(key.clone(), TaskInfo { owner, running })
            .is_none()
        {
            self.order.push_back(key);
        }
        while self.order.len() > MAX_TRACKED_TASKS {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    /// What is known of backend `b`'s task `id`.
    pub fn get(&self, b: usize, id: &str) -> Option<TaskInfo> {
        self.by_id.get(&(b, id.to_string())).copied()
    }

    /// Records a task's new status.
    pub fn status(&mut self, b: usize, id: &str, status: &str) {
        if let Some(t) = self.by_id.get_mut(&(b, id.to_string())) {
            t.running = still_running(status);
        }
    }

    /// Whether backend `b` has a task still running.
    pub fn running_at(&self, b: usize) -> bool {
        self.by_id.iter().any(|((of, _), t)| *of == b && t.running)
    }

    /// Forgets the tasks of session `s` (it ended).
    pub fn forget_session(&mut self, s: SessionId) {
        self.by_id.retain(|_, t| t.owner != s);
        let by_id = &self.by_id;
        self.order.retain(|k| by_id.contains_key(k));
    }
}

/// Whether a task with `status` has not ended (`completed`, `failed`, `cancelled`).
pub fn still_running(status: &str) -> bool {
    !matches!(status, "completed" | "failed" | "cancelled")
}

/// A task's id and status in a `CreateTaskResult`, a task object or a status notification.
pub fn task_id_and_status(raw: Raw<'_>) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct T {
        #[serde(rename = "taskId")]
        task_id: String,
        #[serde(default)]
        status: String,
    }
    #[derive(Deserialize)]
    struct C {
        task: T,
    }
    let t = serde_json::from_str::<C>(raw.get())
        .map(|c| c.task)
        .or_else(|_| serde_json::from_str::<T>(raw.get()))
        .ok()?;
    Some((t.task_id, t.status))
}

/// A client's `tasks/list`, merged from every running backend.
#[derive(Debug)]
pub(super) struct TaskList {
    client_id: RawId,
    /// The session that asked.
    session: SessionId,
    /// Backends whose last page has not arrived yet.
    waiting: usize,
    /// The task objects so far, comma-separated, ids already prefixed.
    tasks: Vec<u8>,
}

impl Gateway {
    /// Drops every `tasks/list` of session `s` (it ended): no answer is sent.
    pub(super) fn drop_task_lists_of(&mut self, s: SessionId) {
        self.task_lists.retain(|_, l| l.session != s);
    }
}

/// Which task-shaped answer a forwarded request will get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskOp {
    /// Not a task request; only a related-task `_meta` may carry a task id.
    #[default]
    None,
    /// A task-augmented request: the answer is a `CreateTaskResult` (`result.task.taskId`).
    Create,
    /// `tasks/get` or `tasks/cancel`: the answer is a task (`result.taskId`).
    Single,
}

#[derive(Deserialize)]
struct HasTaskId<'a> {
    #[serde(rename = "taskId", borrow)]
    task_id: &'a RawValue,
}

#[derive(Deserialize)]
struct Created<'a> {
    #[serde(borrow)]
    task: HasTaskId<'a>,
}

#[derive(Deserialize)]
struct MetaRelated<'a> {
    #[serde(rename = "io.modelcontextprotocol/related-task", borrow)]
    related: HasTaskId<'a>,
}

/// Whether some JSON text may mention a task at all (a fast byte search that keeps JSON
/// parsing off the hot path for ordinary messages).
pub fn may_mention_tasks(text: &[u8]) -> bool {
    memchr::memmem::find(text, b"taskId").is_some()
}

/// The spans of the task ids in `msg` (from a backend) that must be shown to the client
/// with the backend's prefix. Each span covers a JSON string value, quotes included.
///
/// Only the members that can carry one are searched (the `_meta` of params and of a
/// result, found by the pass that read the line; a task answer's result; a task status
/// notification's params), so a large payload is not searched again.
pub fn backend_task_id_spans(msg: &Message<'_>, op: TaskOp) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut push = |raw: &RawValue| {
        if raw.get().starts_with('"') {
            if let Some(span) = span_of(msg.line, raw.get()) {
                spans.push(span);
            }
        }
    };
    let metas = [
        msg.call_params().and_then(|p| p.meta),
        msg.result_members().and_then(|r| r.meta),
    ];
    for meta in metas.into_iter().flatten() {
        if may_mention_tasks(meta.as_bytes()) {
            if let Ok(m) = serde_json::from_str::<MetaRelated<'_>>(meta) {
                push(m.related.task_id);
            }
        }
    }
    let task_answer = op != TaskOp::None;
    if let Some(result) = msg
        .result
        .filter(|r| task_answer && may_mention_tasks(r.get().as_bytes()))
    {
        match op {
            TaskOp::Create => {
                if let Ok(c) = serde_json::from_str::<Created<'_>>(result.get()) {
                    push(c.task.task_id);
                }
            }
            TaskOp::Single => {
                if let Ok(t) = serde_json::from_str::<HasTaskId<'_>>(result.get()) {
                    push(t.task_id);
                }
            }
            TaskOp::None => {}
        }
    }
    if msg.method == Some("notifications/tasks/status") {
        if let Some(t) = msg
            .params
            .filter(|p| may_mention_tasks(p.get().as_bytes()))
            .and_then(|p| serde_json::from_str::<HasTaskId<'_>>(p.get()).ok())
        {
            push(t.task_id);
        }
    }
    spans.sort_by_key(|r| r.start);
    spans.dedup();
    spans
}

/// The task ids of one `tasks/list` page: the raw task objects and the next cursor.
pub fn parse_task_page(result: Raw<'_>) -> Option<(Vec<Raw<'_>>, Option<String>)> {
    #[derive(Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        tasks: Vec<&'a RawValue>,
        #[serde(rename = "nextCursor", default)]
        next_cursor: Option<String>,
    }
    let p: Page<'_> = serde_json::from_str(result.get()).ok()?;
    let tasks = p.tasks.into_iter().map(Raw::from).collect();
    Some((tasks, p.next_cursor.filter(|c| !c.is_empty())))
}

/// The span of a task object's `taskId` value inside `task`'s own text.
pub fn task_object_id_span(task: Raw<'_>) -> Option<Range<usize>> {
    let t: HasTaskId<'_> = serde_json::from_str(task.get()).ok()?;
    span_of(task.get().as_bytes(), t.task_id.get()).filter(|_| t.task_id.get().starts_with('"'))
}

/// The raw `params.taskId` of a client's `tasks/get|result|cancel`.
pub fn client_task_id<'a>(msg: &Message<'a>) -> Option<Raw<'a>> {
    let p: HasTaskId<'a> = serde_json::from_str(msg.params?.get()).ok()?;
    Some(p.task_id.into())
}

/// The prefix edit for one task id span: `BACKEND__` inserted after the opening quote.
pub fn prefix_edit(span: &Range<usize>) -> Range<usize> {
    span.start + 1..span.start + 1
}

impl Gateway {
    /// `tasks/get`, `tasks/result` or `tasks/cancel`: routed to the backend named by the
    /// task id's prefix, with the backend's own task id put back. Another session's task
    /// is unknown to this one.
    pub(super) fn task_request(&mut self, now: Instant, msg: &Message<'_>, id: &[u8], op: TaskOp) {
        let task_id = client_task_id(msg);
        let shown: Option<String> = task_id.and_then(|t| serde_json::from_str(t.get()).ok());
        let foreign = shown
            .as_deref()
            .and_then(|t| self.resolve_task(t))
            .and_then(|(b, own)| self.tasks.get(b, &own))
            .is_some_and(|t| t.owner != self.handling);
        if foreign {
            let text = format!(
                "Unknown task: {}. Call tasks/list to see this session's tasks",
                shown.unwrap_or_default()
            );
            write_error(self.reply(), id, INVALID_PARAMS, &text);
            return;
        }
        self.forward_prefixed(now, msg, id, task_id, None, op);
    }

    /// `tasks/list`: every running backend's tasks, followed page by page, in one answer.
    pub(super) fn tasks_list(&mut self, now: Instant, id: &[u8]) {
        let running: Vec<usize> = (0..self.backends.len())
            .filter(|b| self.backends[*b].lifecycle.is_ready() && !self.backends[*b].removed)
            .collect();
        let list_id = self.next_aggregate;
        self.next_aggregate += 1;
        self.task_lists.insert(
            list_id,
            TaskList {
                client_id: RawId::new(id),
                session: self.handling,
                waiting: running.len(),
                tasks: Vec::new(),
            },
        );
        for b in running {
            self.request_task_page(now, b, list_id, None);
        }
        self.finish_task_list(list_id);
    }

    fn request_task_page(&mut self, now: Instant, b: usize, list_id: u64, cursor: Option<&str>) {
        let params = lists::cursor_params(cursor);
        self.send_own(
            now,
            b,
            PendingKind::TaskList(list_id),
            "tasks/list",
            params.as_deref(),
        );
    }

    /// A `tasks/list` page from backend `b` (`None`: it failed or was not answered).
    pub(super) fn task_page(
        &mut self,
        now: Instant,
        b: usize,
        list_id: u64,
        msg: Option<&Message<'_>>,
    ) {
        let page = msg.and_then(|m| m.result).and_then(parse_task_page);
        let prefix = format!("{}{}", self.backends[b].name(), TASK_SEPARATOR);
        let Some(list_session) = self.task_lists.get(&list_id).map(|l| l.session) else {
            return;
        };
        let visible: Vec<bool> = page
            .as_ref()
            .map(|(tasks, _)| {
                tasks
                    .iter()
                    .map(|t| self.task_visible(b, *t, list_session))
                    .collect()
            })
            .unwrap_or_default();
        let Some(list) = self.task_lists.get_mut(&list_id) else {
            return;
        };
        let mut next = None;
        if let Some((tasks, cursor)) = page {
            for (i, task) in tasks.into_iter().enumerate() {
                // Another session's task is not listed.
                if !visible.get(i).copied().unwrap_or(true) {
                    continue;
                }
                if !list.tasks.is_empty() {
                    list.tasks.push(b',');
                }
                match task_object_id_span(task) {
                    Some(span) => {
                        splice(
                            &mut list.tasks,
                            task.get().as_bytes(),
                            &[(prefix_edit(&span), prefix.as_bytes())],
                        );
                        list.tasks.pop();
                    }
                    None => list.tasks.extend_from_slice(task.get().as_bytes()),
                }
            }
            next = cursor;
        }
        match next {
            Some(cursor) => self.request_task_page(now, b, list_id, Some(&cursor)),
            None => {
                list.waiting = list.waiting.saturating_sub(1);
                self.finish_task_list(list_id);
            }
        }
    }

    /// Whether session `s` may see backend `b`'s task object `task`: its own, or one
    /// gangway has no owner for.
    fn task_visible(&self, b: usize, task: Raw<'_>, s: SessionId) -> bool {
        task_id_and_status(task)
            .and_then(|(id, _)| self.tasks.get(b, &id))
            .map_or(true, |t| t.owner == s)
    }

    fn finish_task_list(&mut self, list_id: u64) {
        if self
            .task_lists
            .get(&list_id)
            .is_some_and(|l| l.waiting == 0)
        {
            if let Some(list) = self.task_lists.remove(&list_id) {
                let mut body = b"{\"tasks\":[".to_vec();
                body.extend_from_slice(&list.tasks);
                body.extend_from_slice(b"]}");
                write_result(self.out_to(list.session), list.client_id.as_bytes(), &body);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(line: &str, op: TaskOp) -> Vec<String> {
        let m = Message::parse(line.as_bytes()).unwrap();
        backend_task_id_spans(&m, op)
            .into_iter()
            .map(|r| line[r].to_string())
            .collect()
    }

    #[test]
    fn finds_task_ids_where_the_protocol_puts_them() {
        let create =
            r#"{"jsonrpc":"2.0","id":3,"result":{"task":{"taskId":"t1","status":"working"}}}"#;
        assert_eq!(spans(create, TaskOp::Create), vec!["\"t1\""]);
        assert!(spans(create, TaskOp::None).is_empty());
        let get = r#"{"jsonrpc":"2.0","id":3,"result":{"taskId":"t2","status":"completed"}}"#;
        assert_eq!(spans(get, TaskOp::Single), vec!["\"t2\""]);
        let status = r#"{"jsonrpc":"2.0","method":"notifications/tasks/status","params":{"taskId":"t3","status":"working"}}"#;
        assert_eq!(spans(status, TaskOp::None), vec!["\"t3\""]);
        let related = r#"{"jsonrpc":"2.0","id":0,"method":"elicitation/create","params":{"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"t4"}},"message":"?"}}"#;
        assert_eq!(spans(related, TaskOp::None), vec!["\"t4\""]);
        let result_meta = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"t5"}}}}"#;
        assert_eq!(spans(result_meta, TaskOp::None), vec!["\"t5\""]);
    }

    #[test]
    fn leaves_user_data_named_task_id_alone() {
        let tool = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[],"structuredContent":{"taskId":"jira-1"}}}"#;
        assert!(spans(tool, TaskOp::None).is_empty());
        assert!(spans(tool, TaskOp::Create).is_empty());
    }

    #[test]
    fn task_pages_and_objects() {
        let r = RawValue::from_string(
            r#"{"tasks":[{"taskId":"a","status":"working"}],"nextCursor":"n"}"#.into(),
        )
        .unwrap();
        let (tasks, next) = parse_task_page((&*r).into()).unwrap();
        assert_eq!(next.as_deref(), Some("n"));
        let span = task_object_id_span(tasks[0]).unwrap();
        assert_eq!(&tasks[0].get()[span], "\"a\"");
        assert_eq!(prefix_edit(&(4..7)), 5..5);
    }
}
