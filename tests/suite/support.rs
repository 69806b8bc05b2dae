//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use cap_fleet::{Fleet, FleetConfig, ModelEndpoint};
use cap_testkit::{ScriptStep, ScriptedModel};
use futures::StreamExt;
use serde_json::Value;

/// The PostgreSQL the machine runs for tests.
pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Upper bound for one task, so a broken fleet fails the test instead of hanging it.
pub const TASK_DEADLINE: Duration = Duration::from_secs(300);

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn load_script(name: &str) -> Vec<ScriptStep> {
    cap_testkit::load_script(&fixtures().join(name)).unwrap()
}

/// A fleet with its scripted model and data directory, torn down on drop.
///
/// Requests go as `e2e-developer` (who submits the tasks); reviews of their pull requests
/// need a second person, `e2e-reviewer` ([`TestFleet::post_as_reviewer`]).
pub struct TestFleet {
    pub fleet: Fleet,
    pub model: ScriptedModel,
    pub http: reqwest::Client,
    pub token: String,
    pub reviewer_token: String,
    _data: tempfile::TempDir,
}

impl TestFleet {
    pub async fn start(script: Vec<ScriptStep>, database_url: Option<&str>) -> Self {
        Self::start_with(script, |config| {
            config.database_url = database_url.map(str::to_owned);
        })
        .await
    }

    /// A fleet whose configuration `configure` adjusts (replicas, leases, database).
    pub async fn start_with(
        script: Vec<ScriptStep>,
        configure: impl FnOnce(&mut FleetConfig),
    ) -> Self {
        let mut data = tempfile::tempdir().unwrap();
        // To read a test's logs and state after it ran.
        if std::env::var_os("CAP_E2E_KEEP_DATA").is_some() {
            data.disable_cleanup(true);
            eprintln!("fleet data kept in {}", data.path().display());
        }
        let model = ScriptedModel::start(script).await.unwrap();
        let endpoint = ModelEndpoint {
            base_url: model.base_url(),
            api_key: None,
            model: "scripted".into(),
        };
        let mut config = FleetConfig::new(data.path(), endpoint).unwrap();
        config.log_filter = "info,cap=debug".into();
        config.allowed_repositories = vec!["*".into()];
        configure(&mut config);
        let fleet = Fleet::start(config).await.unwrap();
        let token = fleet
            .issue_token("e2e-developer", cap_identity::Role::Developer)
            .await
            .unwrap();
        let reviewer_token = fleet
            .issue_token("e2e-reviewer", cap_identity::Role::Developer)
            .await
            .unwrap();
        Self {
            fleet,
            model,
            http: reqwest::Client::new(),
            token,
            reviewer_token,
            _data: data,
        }
    }

    /// Stops the services (as dropping the fleet does) and waits for them.
    pub async fn stop(self) {
        self.fleet.stop().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.fleet.gateway_url())
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_with(&self.token, path).await
    }

    /// A GET with another person's token.
    pub async fn get_with(&self, token: &str, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_with(&self.token, path, body).await
    }

    /// Submits a task on `repository_id` as the developer; returns its id.
    pub async fn submit(&self, repository_id: &str, prompt: &str) -> String {
        let (status, created) = self
            .post(
                "/api/v1/tasks",
                serde_json::json!({"repository_id": repository_id, "prompt": prompt}),
            )
            .await;
        assert_eq!(status, 202, "{created}");
        created["task_id"].as_str().unwrap().to_owned()
    }

    /// A request by the second person, who may review the developer's pull requests.
    pub async fn post_as_reviewer(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_with(&self.reviewer_token, path, body).await
    }

    async fn post_with(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates `repository_id` in the forge as a user would: a git repository of `source`,
    /// cloned bare into the forge's root.
    pub fn create_repository(&self, repository_id: &str, source: &Path) -> PathBuf {
        self.create_repository_with(repository_id, source, &[])
    }

    /// As [`TestFleet::create_repository`], with `extra` files (path, content) added to the
    /// copy of `source`.
    pub fn create_repository_with(
        &self,
        repository_id: &str,
        source: &Path,
        extra: &[(&str, &str)],
    ) -> PathBuf {
        let work = tempfile::tempdir().unwrap();
        copy_dir(source, work.path());
        for (path, content) in extra {
            let file = work.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
        git(work.path(), &["init", "-q", "-b", "main"]);
        git(work.path(), &["add", "-A"]);
        git(work.path(), &["commit", "-q", "-m", "Initial commit"]);
        let bare = self
            .fleet
            .config()
            .forge_root()
            .join(format!("{repository_id}.git"));
        std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
        git(
            work.path(),
            &[
                "clone",
                "-q",
                "--bare",
                work.path().to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
        );
        bare
    }

    /// Opens the task's WebSocket stream as the developer.
    pub async fn open_stream(
        &self,
        task_id: &str,
    ) -> anyhow::Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    > {
        let url = format!(
            "ws://{}/ws/tasks/{task_id}/stream",
            self.fleet.gateway_http()
        );
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {}", self.token).parse()?);
        Ok(tokio_tungstenite::connect_async(request).await?.0)
    }

    /// Reads the task's WebSocket stream until the server closes it.
    pub async fn stream_events(&self, task_id: &str) -> anyhow::Result<Vec<Value>> {
        let mut socket = self.open_stream(task_id).await?;
        let mut events = Vec::new();
        let read_all = async {
            while let Some(message) = socket.next().await {
                match message? {
                    tokio_tungstenite::tungstenite::Message::Text(text) => {
                        events.push(serde_json::from_str::<Value>(text.as_str())?);
                    }
                    tokio_tungstenite::tungstenite::Message::Close(_) => break,
                    _ => {}
                }
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(TASK_DEADLINE, read_all)
            .await
            .context("the event stream did not end")??;
        Ok(events)
    }

    /// The task's events recorded so far (the REST read, for a task that is paused and
    /// whose stream therefore stays open).
    pub async fn recorded_events(&self, task_id: &str) -> Vec<Value> {
        let (status, page) = self.get(&format!("/api/v1/tasks/{task_id}/events")).await;
        assert_eq!(status, 200, "{page}");
        page["events"].as_array().unwrap().clone()
    }

    /// Polls the task until it has ended.
    pub async fn wait_for_end(&self, task_id: &str) -> anyhow::Result<Value> {
        let poll = async {
            loop {
                let (_, task) = self.get(&format!("/api/v1/tasks/{task_id}")).await;
                match task["status"].as_str() {
                    Some("completed" | "failed" | "paused") => return task,
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        };
        tokio::time::timeout(TASK_DEADLINE, poll)
            .await
            .context("the task did not end")
    }

    /// The service logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for name in self.fleet.process_names() {
            let path = self.fleet.config().log_dir().join(format!("{name}.log"));
            text.push_str(&format!("--- {name} ---\n{}\n", cap_fleet::tail(&path, 40)));
        }
        text
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Index of the first event after `from` matching `name` and `matches`.
pub fn find_event(
    events: &[Value],
    from: usize,
    name: &str,
    matches: impl Fn(&Value) -> bool,
) -> anyhow::Result<usize> {
    for (index, event) in events.iter().enumerate().skip(from) {
        if event["event"] == name && matches(&event["data"]) {
            return Ok(index);
        }
    }
    let names: Vec<String> = events
        .iter()
        .map(|e| format!("{}:{}", e["event"].as_str().unwrap_or("?"), e["data"]))
        .collect();
    bail!(
        "no {name} event after index {from} matched; events:\n{}",
        names.join("\n")
    )
}
