//! `kubectl mesh-why mcp` speaks the Model Context Protocol on stdio: a client's real message
//! exchange (initialize, initialized, tools/list, tools/call) over the child's pipes, with the
//! analysis of a scenario snapshot coming back as a `mesh-why/v1` report, and a traced request.

mod common;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// A running `mcp` server and the lines it writes.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    next_id: u64,
}

impl Session {
    fn start() -> Session {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why"))
            .arg("mcp")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Session { stdin: child.stdin.take(), child, lines, next_id: 0 }
    }

    fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends a request and returns the response with its id (notifications in between are skipped).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let line = self.lines.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|e| panic!("no answer to {method}: {e}"));
            let message: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {line}"));
            if message["id"] == id {
                assert_eq!(message["jsonrpc"], "2.0");
                return message;
            }
        }
    }

    fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let response = self.request("tools/call", json!({"name": tool, "arguments": arguments}));
        response.get("result").cloned().unwrap_or_else(|| panic!("tools/call {tool} failed: {response}"))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_client_lists_the_read_only_tools_and_gets_reports_back() {
    let mut session = Session::start();
    let init =
        session.request("initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "mesh-why-test", "version": "0"}}));
    assert_eq!(init["result"]["serverInfo"]["name"], "mesh-why");
    assert_eq!(init["result"]["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(init["result"]["capabilities"]["tools"].is_object(), "{init}");
    session.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));

    let tools = session.request("tools/list", json!({}));
    let tools = tools["result"]["tools"].as_array().unwrap().clone();
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["check_all", "trace", "why"]);
    for tool in &tools {
        assert_eq!(tool["annotations"]["readOnlyHint"], true, "{tool}");
        assert_eq!(tool["annotations"]["destructiveHint"], false, "{tool}");
        assert_eq!(tool["inputSchema"]["type"], "object");
    }

    let why = session.call("why", json!({"service": "reviews", "namespace": "default", "snapshot": "testdata/scenarios/proxy-stale"}));
    assert_ne!(why["isError"], true, "{why}");
    let report = &why["structuredContent"];
    assert_eq!(report["schema"], "mesh-why/v1");
    assert_eq!(report["findings"][0]["id"], "proxy-stale");
    assert_eq!(common::schema_violations(report), None);
    // The text content carries the same report for clients that read text only.
    let text: Value = serde_json::from_str(why["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(&text, report);

    let mesh = session.call("check_all", json!({"all_namespaces": true, "snapshot": "testdata/scenarios/vs-conflict"}));
    assert_eq!(mesh["structuredContent"]["target"]["namespace"], "*");
    assert!(mesh["structuredContent"]["findings"].as_array().unwrap().iter().any(|f| f["id"] == "vs-conflict"), "{mesh}");

    let trace = session.call(
        "trace",
        json!({"service": "reviews", "from": "productpage-v1-6b7f9d8c7-ccccc", "headers": ["x-user: tester"], "snapshot": "testdata/scenarios/proxy-stale"}),
    );
    assert_ne!(trace["isError"], true, "{trace}");
    assert_eq!(trace["structuredContent"]["caller"], "default/productpage-v1-6b7f9d8c7-ccccc");
    // The canary the Envoy splits 50/50 where istiod would push 90/10.
    let outcome = trace["structuredContent"]["outcome"].as_str().unwrap();
    assert!(outcome.contains("50%: upstream outbound|9080|v1|reviews.default.svc.cluster.local"), "{outcome}");
    assert_eq!(common::schema_violations(&trace["structuredContent"]), None);

    // A bad input is a tool error that says what is wrong, and the server keeps serving.
    let missing = session.call("why", json!({"service": "reviews", "snapshot": "testdata/scenarios/no-such-snapshot"}));
    assert_eq!(missing["isError"], true, "{missing}");
    assert!(missing["content"][0]["text"].as_str().unwrap().contains("no-such-snapshot"), "{missing}");
    // A service that would be read as a subcommand or a flag is refused, not run.
    for service in ["capture", "--all"] {
        let refused = session.request("tools/call", json!({"name": "why", "arguments": {"service": service, "snapshot": "testdata/scenarios/proxy-stale"}}));
        assert!(refused.get("error").is_some() || refused["result"]["isError"] == true, "{refused}");
    }

    // Closing stdin ends the session, and the server with it.
    session.stdin.take();
    let (tx, rx) = channel();
    let mut child = std::mem::replace(&mut session.child, Command::new("true").spawn().unwrap());
    std::thread::spawn(move || tx.send(child.wait()));
    assert!(rx.recv_timeout(Duration::from_secs(30)).is_ok_and(|s| s.is_ok_and(|s| s.success())), "the server did not exit when stdin closed");
}
