//! What `gangway serve` says about itself besides MCP: the Prometheus text exposition of
//! `/metrics`, the JSON of `/status.json` and the status page `/` (one small HTML page with
//! no framework, rendered on the server and refreshed by a few lines of script). Pure:
//! rendered from a [`Status`] snapshot and the front's own counters.

use crate::gateway::stats::{BackendStatus, Histogram, Status, LATENCY_BOUNDS};
use std::fmt::Write as _;
use std::time::Duration;

/// The HTTP front's own counters.
#[derive(Debug, Clone, Default)]
pub struct FrontStats {
    /// Connections open now.
    pub connections: usize,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Responses sent, by status code.
    pub responses: std::collections::BTreeMap<u16, u64>,
    /// Bytes read from and written to connections.
    pub bytes_in: u64,
    /// Bytes written to connections.
    pub bytes_out: u64,
    /// Bytes waiting to be written to connections now.
    pub queued: usize,
    /// Sessions open on the HTTP front (Streamable HTTP and legacy SSE).
    pub sessions: usize,
    /// Those sessions, for the status page.
    pub session_rows: Vec<SessionRow>,
}

/// One HTTP session on the status page. Its id is shown by its first 8 characters only:
/// the whole id is a credential.
#[derive(Debug, Clone, Default)]
pub struct SessionRow {
    /// The first 8 characters of its `Mcp-Session-Id`.
    pub id: String,
    /// `streamable-http` or `sse` (the 2024-11-05 transport).
    pub transport: &'static str,
    /// Its clientInfo name and version.
    pub client: Option<String>,
    /// The protocol version it speaks.
    pub version: Option<&'static str>,
    /// How long since its last request.
    pub idle: Duration,
    /// Streams with a connection attached.
    pub streams: usize,
}

fn esc_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn histogram(out: &mut String, name: &str, backend: &str, h: &Histogram) {
    let b = esc_label(backend);
    let mut cumulative = 0;
    for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
        cumulative += h.counts[i];
        let _ = writeln!(
            out,
            "{name}_bucket{{backend=\"{b}\",le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{backend=\"{b}\",le=\"+Inf\"}} {}",
        h.count
    );
    let _ = writeln!(out, "{name}_sum{{backend=\"{b}\"}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{backend=\"{b}\"}} {}", h.count);
}

/// The Prometheus text exposition (format 0.0.4) of `status` and the front's counters.
/// Labels are backend names, method names from a fixed list, outcomes and status codes:
/// never session ids, tool names or arguments.
pub fn metrics(status: &Status, front: &FrontStats) -> String {
    let mut out = String::with_capacity(4096);
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    type Counter = fn(&BackendStatus) -> f64;
    let per_backend: [(&str, &str, &str, Counter); 9] = [
        (
            "gangway_backend_starts_total",
            "counter",
            "Backend processes started.",
            |b| b.stats.starts as f64,
        ),
        (
            "gangway_backend_start_failures_total",
            "counter",
            "Starts that failed before initialize was answered.",
            |b| b.stats.start_failures as f64,
        ),
        (
            "gangway_backend_crashes_total",
            "counter",
            "Backend exits gangway did not ask for, failed starts included.",
            |b| b.stats.crashes as f64,
        ),
        (
            "gangway_backend_restarts_total",
            "counter",
            "Starts that followed a crash.",
            |b| b.stats.restarts as f64,
        ),
        (
            "gangway_backend_idle_stops_total",
            "counter",
            "Backend stops for being idle.",
            |b| b.stats.idle_stops as f64,
        ),
        (
            "gangway_backend_running",
            "gauge",
            "Backend processes running (one per session for a session-scoped backend).",
            |b| b.running as f64,
        ),
        (
            "gangway_backend_up",
            "gauge",
            "1 while the backend is ready.",
            |b| f64::from(u8::from(b.state == "ready")),
        ),
        (
            "gangway_backend_in_flight",
            "gauge",
            "Client requests waiting for the backend's answer.",
            |b| b.in_flight as f64,
        ),
        (
            "gangway_backend_uptime_seconds",
            "gauge",
            "How long the backend's process has run (0 when none).",
            |b| b.uptime.map_or(0.0, |d| d.as_secs_f64()),
        ),
    ];
    family(
        &mut out,
        "gangway_requests_total",
        "counter",
        "Client requests to backends, by backend, method and outcome.",
    );
    for b in &status.backends {
        for ((method, outcome), n) in &b.stats.requests {
            let _ = writeln!(
                out,
                "gangway_requests_total{{backend=\"{}\",method=\"{method}\",outcome=\"{}\"}} {n}",
                esc_label(&b.name),
                outcome.label()
            );
        }
    }
    family(
        &mut out,
        "gangway_request_duration_seconds",
        "histogram",
        "Time from writing a request to a backend to its answer.",
    );
    for b in &status.backends {
        histogram(
            &mut out,
            "gangway_request_duration_seconds",
            &b.name,
            &b.stats.latency,
        );
    }
    family(
        &mut out,
        "gangway_backend_start_duration_seconds",
        "histogram",
        "Cold start: from spawn to the answer to initialize.",
    );
    for b in &status.backends {
        histogram(
            &mut out,
            "gangway_backend_start_duration_seconds",
            &b.name,
            &b.stats.start_seconds,
        );
    }
    for (name, kind, help, value) in per_backend {
        family(&mut out, name, kind, help);
        for b in &status.backends {
            let _ = writeln!(
                out,
                "{name}{{backend=\"{}\"}} {}",
                esc_label(&b.name),
                value(b)
            );
        }
    }
    family(
        &mut out,
        "gangway_sessions",
        "gauge",
        "Client sessions open.",
    );
    let _ = writeln!(out, "gangway_sessions {}", status.sessions);
    family(
        &mut out,
        "gangway_http_connections_open",
        "gauge",
        "HTTP connections open.",
    );
    let _ = writeln!(out, "gangway_http_connections_open {}", front.connections);
    family(
        &mut out,
        "gangway_http_connections_total",
        "counter",
        "HTTP connections accepted.",
    );
    let _ = writeln!(
        out,
        "gangway_http_connections_total {}",
        front.connections_total
    );
    family(
        &mut out,
        "gangway_http_responses_total",
        "counter",
        "HTTP responses, by status code.",
    );
    for (code, n) in &front.responses {
        let _ = writeln!(out, "gangway_http_responses_total{{code=\"{code}\"}} {n}");
    }
    family(
        &mut out,
        "gangway_http_received_bytes_total",
        "counter",
        "Bytes read from HTTP connections.",
    );
    let _ = writeln!(out, "gangway_http_received_bytes_total {}", front.bytes_in);
    family(
        &mut out,
        "gangway_http_sent_bytes_total",
        "counter",
        "Bytes written to HTTP connections.",
    );
    let _ = writeln!(out, "gangway_http_sent_bytes_total {}", front.bytes_out);
    family(
        &mut out,
        "gangway_queued_bytes",
        "gauge",
        "Bytes waiting to be written, by queue.",
    );
    let _ = writeln!(
        out,
        "gangway_queued_bytes{{queue=\"backends\"}} {}",
        status.queued_to_backends
    );
    let _ = writeln!(
        out,
        "gangway_queued_bytes{{queue=\"sessions\"}} {}",
        status.queued_to_clients
    );
    let _ = writeln!(
        out,
        "gangway_queued_bytes{{queue=\"connections\"}} {}",
        front.queued
    );
    out
}

fn json_str(out: &mut String, s: &str) {
    let mut buf = Vec::new();
    crate::wire::message::write_json_string(&mut buf, s);
    out.push_str(&String::from_utf8_lossy(&buf));
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("null".to_string(), |d| format!("{:.3}", d.as_secs_f64()))
}

/// The status as JSON, for scripts: sessions, queues and every backend with its state,
/// process, uptime, time to idle stop, calls, errors, p50/p99 latency, last error and
/// stderr tail.
pub fn status_json(status: &Status, front: &FrontStats) -> String {
    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        "{{\"sessions\":{},\"http_connections\":{},\"backends\":[",
        status.sessions, front.connections
    );
    for (i, b) in status.backends.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_str(&mut out, &b.name);
        let _ = write!(
            out,
            ",\"state\":\"{}\",\"retry_in_seconds\":{}",
            b.state,
            secs(b.retry_in)
        );
        out.push_str(",\"program\":");
        json_str(&mut out, &b.program);
        let _ = write!(
            out,
            ",\"docker\":{},\"per_session\":{},\"running\":{},\"pid\":{}",
            b.docker,
            b.per_session,
            b.running,
            b.process
                .as_ref()
                .map_or("null".to_string(), |(p, _)| p.to_string())
        );
        out.push_str(",\"container\":");
        match b.process.as_ref().and_then(|(_, c)| c.as_deref()) {
            Some(c) => json_str(&mut out, c),
            None => out.push_str("null"),
        }
        let p = |q| b.stats.latency.quantile(q).map(Duration::from_secs_f64);
        let _ = write!(
            out,
            ",\"uptime_seconds\":{},\"idle_stop_in_seconds\":{},\"in_flight\":{},\"calls\":{},\"errors\":{},\"p50_seconds\":{},\"p99_seconds\":{},\"starts\":{},\"crashes\":{}",
            secs(b.uptime),
            secs(b.idle_stop_in),
            b.in_flight,
            b.stats.calls(),
            b.stats.errors(),
            secs(p(0.5)),
            secs(p(0.99)),
            b.stats.starts,
            b.stats.crashes
        );
        out.push_str(",\"last_error\":");
        match &b.last_error {
            Some(e) => json_str(&mut out, e),
            None => out.push_str("null"),
        }
        out.push_str(",\"stderr_tail\":[");
        for (j, line) in b.stderr_tail.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            json_str(&mut out, line);
        }
        out.push_str("]}");
    }
    out.push_str("],\"http_sessions\":[");
    for (i, r) in front.session_rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"id\":");
        json_str(&mut out, &r.id);
        let _ = write!(out, ",\"transport\":\"{}\",\"client\":", r.transport);
        match &r.client {
            Some(c) => json_str(&mut out, c),
            None => out.push_str("null"),
        }
        let _ = write!(
            out,
            ",\"protocol_version\":{},\"idle_seconds\":{:.3},\"open_streams\":{}}}",
            r.version.map_or("null".to_string(), |v| format!("\"{v}\"")),
            r.idle.as_secs_f64(),
            r.streams
        );
    }
    out.push_str("]}");
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn human(d: Option<Duration>) -> String {
    let Some(d) = d else {
        return "-".to_string();
    };
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn ms(q: Option<f64>) -> String {
    q.map_or("-".to_string(), |s| format!("{:.0} ms", s * 1000.0))
}

/// The rows of the backend table (also what the page's script re-renders from
/// `/status.json`, so the two look alike).
fn rows(status: &Status) -> String {
    let mut out = String::new();
    for b in &status.backends {
        let name = html_escape(&b.name);
        let process = match &b.process {
            Some((pid, Some(c))) => format!("container {} (pid {pid})", html_escape(c)),
            Some((pid, None)) => format!("pid {pid}"),
            None => "-".to_string(),
        };
        let state = match b.retry_in {
            Some(d) if b.state == "failing" => format!("failing (retry in {})", human(Some(d))),
            _ => b.state.to_string(),
        };
        let error = b.last_error.as_deref().map(html_escape).unwrap_or_default();
        let tail = html_escape(&b.stderr_tail.join("\n"));
        let _ = write!(
            out,
            "<tr data-backend=\"{name}\"><td class=n>{name}<div class=sub>{}{}</div></td><td class=\"state {}\" data-state=\"{}\">{}</td><td>{process}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td class=err>{error}{}</td><td class=act><button data-do=start>start</button><button data-do=stop>stop</button><button data-do=restart>restart</button></td></tr>",
            html_escape(&b.program),
            if b.per_session { " · per session" } else { "" },
            b.state,
            b.state,
            html_escape(&state),
            human(b.uptime),
            human(b.idle_stop_in),
            b.stats.calls(),
            b.stats.errors(),
            ms(b.stats.latency.quantile(0.5)),
            ms(b.stats.latency.quantile(0.99)),
            if tail.is_empty() { String::new() } else { format!("<details><summary>stderr</summary><pre>{tail}</pre></details>") },
        );
    }
    out
}

fn session_rows(front: &FrontStats) -> String {
    let mut out = String::new();
    for r in &front.session_rows {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&r.id),
            html_escape(r.client.as_deref().unwrap_or("-")),
            r.version.unwrap_or("-"),
            r.transport,
            human(Some(r.idle)),
            r.streams
        );
    }
    out
}

/// The status page: every backend with its state and figures, the sessions open, and
/// buttons that start, stop and restart a backend (POST `/backends/NAME/ACTION`). It
/// renders on the server and refreshes itself every 2 s from `/status.json`.
pub fn status_page(status: &Status, front: &FrontStats) -> String {
    PAGE.replace("{{SESSIONS}}", &status.sessions.to_string())
        .replace("{{CONNECTIONS}}", &front.connections.to_string())
        .replace("{{ROWS}}", &rows(status))
        .replace("{{SESSION_ROWS}}", &session_rows(front))
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
}

const PAGE: &str = r#"<!doctype html>
<html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width,initial-scale=1">
<title>gangway status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1rem;color:#222;background:#fafafa}
h1{font-size:1.2rem;margin:0 0 .5rem}
h2{font-size:1rem;margin:1.2rem 0 .4rem}
.meta{color:#666;margin-bottom:1rem}
.wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:.4rem .5rem;border-bottom:1px solid #eee;text-align:left;vertical-align:top;white-space:nowrap}
th{font-weight:600;background:#f0f0f0}
.sub{color:#888;font-size:.8rem}
.state{font-weight:600}
.ready{color:#17803d}.starting,.stopping{color:#b26b00}.failing{color:#c0262d}.stopped,.disabled{color:#777}
.err{white-space:normal;max-width:28rem;color:#a33;font-size:.85rem}
pre{white-space:pre-wrap;font-size:.75rem;margin:.3rem 0}
button{margin:0 .2rem .2rem 0;padding:.3rem .6rem;font-size:.85rem}
@media (max-width:700px){td,th{padding:.3rem}}
</style></head>
<body>
<h1>gangway <span class=sub>{{VERSION}}</span></h1>
<div class=meta><span id=sessions>{{SESSIONS}}</span> session(s) open · <span id=conns>{{CONNECTIONS}}</span> HTTP connection(s) · <span id=updated>rendered by the server</span></div>
<div class=wrap><table>
<thead><tr><th>backend</th><th>state</th><th>process</th><th>uptime</th><th>idle stop in</th><th>calls</th><th>errors</th><th>p50 / p99</th><th>last error</th><th></th></tr></thead>
<tbody id=rows>{{ROWS}}</tbody></table></div>
<h2>HTTP sessions</h2>
<div class=wrap><table>
<thead><tr><th>session</th><th>client</th><th>protocol</th><th>transport</th><th>idle</th><th>open streams</th></tr></thead>
<tbody id=sessions-rows>{{SESSION_ROWS}}</tbody></table></div>
<script>
const esc=s=>String(s??'').replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
const dur=s=>s==null?'-':s>=3600?Math.floor(s/3600)+'h'+String(Math.floor(s%3600/60)).padStart(2,'0')+'m':s>=60?Math.floor(s/60)+'m'+String(Math.floor(s%60)).padStart(2,'0')+'s':s.toFixed(1)+'s';
const ms=s=>s==null?'-':Math.round(s*1000)+' ms';
function row(b){
 const proc=b.pid==null?'-':b.container?'container '+esc(b.container)+' (pid '+b.pid+')':'pid '+b.pid;
 const state=b.state==='failing'&&b.retry_in_seconds!=null?'failing (retry in '+dur(b.retry_in_seconds)+')':b.state;
 const tail=b.stderr_tail.length?'<details><summary>stderr</summary><pre>'+esc(b.stderr_tail.join('\n'))+'</pre></details>':'';
 return '<tr data-backend="'+esc(b.name)+'"><td class=n>'+esc(b.name)+'<div class=sub>'+esc(b.program)+(b.per_session?' · per session':'')+'</div></td><td class="state '+b.state+'" data-state="'+b.state+'">'+esc(state)+'</td><td>'+proc+'</td><td>'+dur(b.uptime_seconds)+'</td><td>'+dur(b.idle_stop_in_seconds)+'</td><td>'+b.calls+'</td><td>'+b.errors+'</td><td>'+ms(b.p50_seconds)+' / '+ms(b.p99_seconds)+'</td><td class=err>'+esc(b.last_error)+tail+'</td><td class=act><button data-do=start>start</button><button data-do=stop>stop</button><button data-do=restart>restart</button></td></tr>';
}
async function refresh(){
 try{const r=await fetch('status.json',{cache:'no-store'});if(!r.ok)throw new Error(r.status);const s=await r.json();
  document.getElementById('rows').innerHTML=s.backends.map(row).join('');
  document.getElementById('sessions-rows').innerHTML=s.http_sessions.map(x=>'<tr><td><code>'+esc(x.id)+'</code></td><td>'+esc(x.client??'-')+'</td><td>'+esc(x.protocol_version??'-')+'</td><td>'+x.transport+'</td><td>'+dur(x.idle_seconds)+'</td><td>'+x.open_streams+'</td></tr>').join('');
  document.getElementById('sessions').textContent=s.sessions;
  document.getElementById('conns').textContent=s.http_connections;
  document.getElementById('updated').textContent='updated '+new Date().toLocaleTimeString();
 }catch(e){document.getElementById('updated').textContent='cannot reach gangway ('+e.message+')';}
}
document.addEventListener('click',async e=>{
 const act=e.target.dataset&&e.target.dataset.do;if(!act)return;
 const name=e.target.closest('tr').dataset.backend;e.target.disabled=true;
 const r=await fetch('backends/'+encodeURIComponent(name)+'/'+act,{method:'POST'});
 if(!r.ok)alert(act+' '+name+': '+await r.text());
 refresh();
});
setInterval(refresh,2000);
</script>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::stats::{BackendStats, Outcome};

    fn status() -> Status {
        let mut stats = BackendStats::default();
        stats.request("tools/call", Outcome::Ok, Some(0.004));
        stats.request("tools/call", Outcome::Timeout, None);
        stats.starts = 1;
        Status {
            sessions: 2,
            backends: vec![BackendStatus {
                name: "everything".to_string(),
                state: "ready",
                retry_in: None,
                program: "node".to_string(),
                docker: false,
                per_session: false,
                running: 1,
                process: Some((42, None)),
                uptime: Some(Duration::from_secs(75)),
                idle_stop_in: Some(Duration::from_secs(30)),
                in_flight: 0,
                last_error: Some("backend 'everything' exited <3>".to_string()),
                stderr_tail: vec!["line & more".to_string()],
                stats,
            }],
            queued_to_backends: 0,
            queued_to_clients: 5,
        }
    }

    #[test]
    fn metrics_have_help_type_and_cumulative_buckets() {
        let text = metrics(
            &status(),
            &FrontStats {
                connections: 3,
                ..FrontStats::default()
            },
        );
        assert!(text.contains("# TYPE gangway_requests_total counter"));
        assert!(text.contains(
            "gangway_requests_total{backend=\"everything\",method=\"tools/call\",outcome=\"timeout\"} 1"
        ));
        assert!(text.contains(
            "gangway_request_duration_seconds_bucket{backend=\"everything\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "gangway_request_duration_seconds_bucket{backend=\"everything\",le=\"+Inf\"} 1"
        ));
        assert!(text.contains("gangway_backend_up{backend=\"everything\"} 1"));
        assert!(text.contains("gangway_http_connections_open 3"));
        assert!(text.contains("gangway_queued_bytes{queue=\"sessions\"} 5"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect("name and value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn the_page_and_the_json_escape_what_backends_wrote() {
        let front = FrontStats {
            session_rows: vec![SessionRow {
                id: "0123abcd".to_string(),
                transport: "streamable-http",
                client: Some("<claude-code> 2.1".to_string()),
                version: Some("2025-06-18"),
                idle: Duration::from_secs(3),
                streams: 1,
            }],
            ..FrontStats::default()
        };
        let page = status_page(&status(), &front);
        assert!(page.contains("<code>0123abcd</code>") && page.contains("&lt;claude-code&gt; 2.1"));
        let json: serde_json::Value =
            serde_json::from_str(&status_json(&status(), &front)).expect("valid JSON");
        assert_eq!(json["http_sessions"][0]["client"], "<claude-code> 2.1");
        assert_eq!(json["http_sessions"][0]["protocol_version"], "2025-06-18");
        assert!(page.contains("data-state=\"ready\""));
        assert!(page.contains("exited &lt;3&gt;") && page.contains("line &amp; more"));
        assert!(!page.contains("{{"), "every placeholder is filled");
        let json: serde_json::Value =
            serde_json::from_str(&status_json(&status(), &FrontStats::default()))
                .expect("valid JSON");
        assert_eq!(json["backends"][0]["state"], "ready");
        assert_eq!(json["backends"][0]["calls"], 2);
        assert_eq!(json["backends"][0]["errors"], 1);
        assert_eq!(json["backends"][0]["p50_seconds"], 0.005);
        assert_eq!(json["sessions"], 2);
    }
}
