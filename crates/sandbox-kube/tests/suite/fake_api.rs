//! A fake Kubernetes API server on loopback, for what `tower-test` cannot carry: `exec` is a
//! WebSocket upgrade, and kube-rs takes the upgraded connection from hyper, which only a real
//! HTTP connection gives. It speaks the `v5.channel.k8s.io` stream protocol (channel byte,
//! then data: 0 stdin, 1 stdout, 2 stderr, 3 status; `[255, 0]` closes stdin), keeps the Pods
//! and NetworkPolicies it is sent, and records every request for the tests to assert.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::Client;
use serde_json::{Value, json};

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    /// Query parameters in order, repeated keys kept (`command=a&command=b`).
    pub query: Vec<(String, String)>,
    /// The JSON body (null when empty).
    pub body: Value,
    /// For an exec: what arrived on stdin.
    pub stdin: Vec<u8>,
}

impl Recorded {
    /// The values of a query parameter.
    pub fn param(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// How the fake answers one exec.
#[derive(Debug, Clone)]
pub enum ExecReply {
    /// Output frames (channel, bytes) in order, then the exit status.
    Exit {
        frames: Vec<(u8, Vec<u8>)>,
        exit_code: i32,
    },
    /// Exits at once with this stderr, without reading its stdin.
    ExitBeforeStdin { stderr: Vec<u8>, exit_code: i32 },
    /// Never ends (until the client goes away).
    Hang,
}

impl ExecReply {
    pub fn ok(stdout: &[u8]) -> Self {
        Self::Exit {
            frames: vec![(1, stdout.to_vec())],
            exit_code: 0,
        }
    }
}

type ExecScript = Box<dyn Fn(&[String], &[u8]) -> ExecReply + Send + Sync>;

struct Fake {
    requests: Mutex<Vec<Recorded>>,
    objects: Mutex<HashMap<String, Value>>,
    /// Pod statuses answered to GETs, in order; when none is left, `Running`.
    pod_statuses: Mutex<VecDeque<Value>>,
    /// Requests answered with an error: (method, path suffix) -> code.
    failures: Mutex<Vec<(Method, String, u16)>>,
    exec: ExecScript,
}

/// The running fake.
pub struct FakeApi {
    fake: Arc<Fake>,
    addr: std::net::SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeApi {
    /// Starts a fake whose execs are answered by `exec(argv, stdin)`.
    pub async fn start(
        exec: impl Fn(&[String], &[u8]) -> ExecReply + Send + Sync + 'static,
    ) -> Self {
        let fake = Arc::new(Fake {
            requests: Mutex::default(),
            objects: Mutex::default(),
            pod_statuses: Mutex::default(),
            failures: Mutex::default(),
            exec: Box::new(exec),
        });
        let app = Router::new()
            .route(
                "/api/v1/namespaces/{ns}/pods/{name}/exec",
                get(exec_handler),
            )
            .fallback(rest_handler)
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { fake, addr, server }
    }

    /// A client of this fake (plain HTTP on loopback).
    pub fn client(&self) -> Client {
        let config = kube::Config::new(format!("http://{}", self.addr).parse().unwrap());
        Client::try_from(config).unwrap()
    }

    /// Answers the next Pod GETs with these statuses (then `Running`).
    pub fn pod_statuses(&self, statuses: impl IntoIterator<Item = Value>) {
        self.fake.pod_statuses.lock().unwrap().extend(statuses);
    }

    /// Answers `method` on paths ending in `suffix` with `code`.
    pub fn fail(&self, method: Method, suffix: &str, code: u16) {
        self.fake
            .failures
            .lock()
            .unwrap()
            .push((method, suffix.to_owned(), code));
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.fake.requests.lock().unwrap().clone()
    }

    /// Requests so far, as `METHOD path` (the exec's command appended).
    pub fn calls(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| {
                let command = r.param("command");
                if command.is_empty() {
                    format!("{} {}", r.method, r.path)
                } else {
                    format!("{} {} {}", r.method, r.path, command.join(" "))
                }
            })
            .collect()
    }

    /// The names of the objects that exist now.
    pub fn objects(&self) -> Vec<String> {
        let mut names: Vec<String> = self.fake.objects.lock().unwrap().keys().cloned().collect();
        names.sort();
        names
    }
}

fn status(code: u16, reason: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": format!("{reason} (fake)"), "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |text: &str| {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                byte => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    };
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

async fn rest_handler(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    fake.requests.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query: parse_query(uri.query()),
        body: body.clone(),
        stdin: Vec::new(),
    });
    let failure = fake
        .failures
        .lock()
        .unwrap()
        .iter()
        .find(|(m, suffix, _)| *m == method && path.ends_with(suffix.as_str()))
        .map(|(_, _, code)| *code);
    if let Some(code) = failure {
        return status(code, "Forbidden");
    }
    let mut objects = fake.objects.lock().unwrap();
    match method {
        Method::POST => {
            let name = body["metadata"]["name"].as_str().unwrap();
            let kind = if path.ends_with("/pods") {
                "pod"
            } else {
                "networkpolicy"
            };
            objects.insert(format!("{kind}/{name}"), body.clone());
            (StatusCode::CREATED, axum::Json(body)).into_response()
        }
        Method::GET if path.ends_with("/pods") => {
            let items: Vec<Value> = objects
                .iter()
                .filter(|(key, _)| key.starts_with("pod/"))
                .map(|(_, pod)| pod.clone())
                .collect();
            axum::Json(
                json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}),
            )
            .into_response()
        }
        Method::GET => {
            let name = path.rsplit('/').next().unwrap();
            let Some(mut pod) = objects.get(&format!("pod/{name}")).cloned() else {
                return status(404, "NotFound");
            };
            let next = fake.pod_statuses.lock().unwrap().pop_front();
            pod["status"] = next.unwrap_or_else(|| json!({"phase": "Running"}));
            axum::Json(pod).into_response()
        }
        Method::DELETE => {
            let name = path.rsplit('/').next().unwrap();
            let kind = if path.contains("/pods/") {
                "pod"
            } else {
                "networkpolicy"
            };
            match objects.remove(&format!("{kind}/{name}")) {
                Some(object) => axum::Json(object).into_response(),
                None => status(404, "NotFound"),
            }
        }
        _ => status(405, "MethodNotAllowed"),
    }
}

async fn exec_handler(
    State(fake): State<Arc<Fake>>,
    Path((_, name)): Path<(String, String)>,
    uri: Uri,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Response {
    let query = parse_query(query.as_deref());
    let index = {
        let mut requests = fake.requests.lock().unwrap();
        requests.push(Recorded {
            method: Method::GET,
            path: uri.path().to_owned(),
            query: query.clone(),
            body: Value::Null,
            stdin: Vec::new(),
        });
        requests.len() - 1
    };
    let refused = fake
        .failures
        .lock()
        .unwrap()
        .iter()
        .any(|(m, suffix, _)| *m == Method::GET && uri.path().ends_with(suffix.as_str()));
    if refused {
        return status(403, "Forbidden");
    }
    if !fake
        .objects
        .lock()
        .unwrap()
        .contains_key(&format!("pod/{name}"))
    {
        return status(404, "NotFound");
    }
    let argv: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let stdin = query.iter().any(|(k, v)| k == "stdin" && v == "true");
    upgrade
        .protocols(["v5.channel.k8s.io"])
        .on_upgrade(move |socket| session(fake, index, argv, stdin, socket))
}

async fn session(
    fake: Arc<Fake>,
    index: usize,
    argv: Vec<String>,
    stdin: bool,
    mut socket: WebSocket,
) {
    let mut input = Vec::new();
    let early = (fake.exec)(&argv, &[]);
    if let ExecReply::ExitBeforeStdin { stderr, exit_code } = early {
        let frames = vec![(2, stderr)];
        return reply(&mut socket, ExecReply::Exit { frames, exit_code }).await;
    }
    if stdin {
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Binary(bytes) = message {
                match bytes.first() {
                    Some(0) => input.extend_from_slice(&bytes[1..]),
                    Some(255) if bytes.get(1) == Some(&0) => break,
                    _ => {}
                }
            }
        }
    }
    fake.requests.lock().unwrap()[index].stdin = input.clone();
    reply(&mut socket, (fake.exec)(&argv, &input)).await;
}

async fn reply(socket: &mut WebSocket, reply: ExecReply) {
    match reply {
        ExecReply::Hang | ExecReply::ExitBeforeStdin { .. } => {
            // Until the client hangs up.
            while let Some(Ok(_)) = socket.recv().await {}
        }
        ExecReply::Exit { frames, exit_code } => {
            for (channel, data) in frames {
                let mut frame = vec![channel];
                frame.extend(data);
                let _ = socket.send(Message::Binary(frame.into())).await;
            }
            let status = if exit_code == 0 {
                json!({"metadata": {}, "status": "Success"})
            } else {
                json!({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                       "message": format!("command terminated with non-zero exit code"),
                       "details": {"causes": [{"reason": "ExitCode", "message": exit_code.to_string()}]}})
            };
            let mut frame = vec![3u8];
            frame.extend(serde_json::to_vec(&status).unwrap());
            let _ = socket.send(Message::Binary(frame.into())).await;
            let _ = socket.send(Message::Close(None)).await;
        }
    }
}
