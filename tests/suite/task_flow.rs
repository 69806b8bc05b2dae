//! The first task from request to pull request, on SQLite and on PostgreSQL.

use pretty_assertions::assert_eq;
use serde_json::json;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixes_a_failing_test_and_opens_a_pull_request_sqlite() {
    fix_task_end_to_end(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixes_a_failing_test_and_opens_a_pull_request_postgres() {
    fix_task_end_to_end(Some(POSTGRES_URL)).await;
}

async fn fix_task_end_to_end(database_url: Option<&str>) {
    let mut fleet =
        TestFleet::start(load_script("python-calculator.script.json"), database_url).await;
    let repository_id = format!("e2e/calculator-{}", uuid::Uuid::new_v4().simple());
    let bare = fleet.create_repository(&repository_id, &fixtures().join("python-calculator"));

    // Bad input is refused with the field named, and nothing is queued.
    let (status, body) = fleet
        .post("/api/v1/tasks", json!({"repository_id": repository_id}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "prompt", "{body}");

    let (status, created) = fleet
        .post(
            "/api/v1/tasks",
            json!({
                "repository_id": repository_id,
                "prompt": "Fix the bug that makes test_add fail.",
                "constraints": {"avoid_files": ["README.md"], "max_files_changed": 2},
                "priority": "high"
            }),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["status"], "queued");
    let task_id = created["task_id"].as_str().unwrap().to_owned();

    let events = fleet.stream_events(&task_id).await.unwrap();
    let task = fleet.wait_for_end(&task_id).await.unwrap();
    assert_eq!(
        task["status"],
        "completed",
        "task: {task}\n{}",
        fleet.logs()
    );
    assert_eq!(task["progress_percentage"], 100);
    let branch = task["branch"].as_str().unwrap().to_owned();
    assert!(branch.starts_with("coding-assistant/"), "{branch}");
    assert!(
        branch.ends_with("-fix-the-bug-that-makes-test-add-fail"),
        "{branch}"
    );

    // The stream delivered every event, in order, without gaps.
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
    let running = find_event(&events, 0, "task_status", |d| d["status"] == "running").unwrap();
    let plan = find_event(&events, running, "agent_thought", |d| {
        // The context agent's repository map is part of the plan.
        let plan = d["reasoning"].as_str().unwrap();
        d["agent"] == "supervisor" && plan.contains("Repository map:") && plan.contains("add(a, b)")
    })
    .unwrap();
    let read = find_event(&events, plan, "agent_action", |d| d["tool"] == "read_file").unwrap();
    let edit = find_event(&events, read, "file_modified", |d| d["path"] == "calc.py").unwrap();
    assert_eq!(events[edit]["data"]["diff_stat"]["additions"], 1);
    assert_eq!(events[edit]["data"]["diff_stat"]["deletions"], 1);
    let agent_tests =
        find_event(&events, edit, "command_executed", |d| d["exit_code"] == 0).unwrap();
    let finished = find_event(&events, agent_tests, "checkpoint_reached", |d| {
        d["type"] == "agent_finished"
    })
    .unwrap();
    // The testing agent runs the repository's suite in the sandbox, and it passes.
    let suite = find_event(&events, finished, "command_executed", |d| {
        d["command"].as_str().unwrap().contains("pytest") && d["exit_code"] == 0
    })
    .unwrap();
    assert!(
        events[suite]["data"]["stdout_snippet"]
            .as_str()
            .unwrap()
            .contains("3 passed")
    );
    let passed = find_event(&events, suite, "checkpoint_reached", |d| {
        d["type"] == "tests_passed"
    })
    .unwrap();
    let approval = find_event(&events, passed, "checkpoint_reached", |d| {
        d["type"] == "human_approval_required"
    })
    .unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["data"]["status"].as_str()),
        (Some("task_status"), Some("completed"))
    );
    assert!(approval < events.len() - 1);

    // The model saw the file it asked for and the test results.
    let requests = fleet.model.requests();
    assert_eq!(requests.len(), 4);
    assert!(requests[1].to_string().contains("return a - b"));

    // The pull request holds the fix, on the branch, in the bare repository.
    let pr_id = task["pull_request_id"].as_str().unwrap().to_owned();
    let (status, pr) = fleet.get(&format!("/api/v1/pull-requests/{pr_id}")).await;
    assert_eq!(status, 200, "{pr}");
    assert_eq!(pr["state"], "open");
    assert_eq!(pr["head_branch"], branch.as_str());
    assert_eq!(pr["base_branch"], "main");
    let diff = pr["diff"].as_str().unwrap();
    assert!(
        diff.contains("-    return a - b\n+    return a + b"),
        "{diff}"
    );
    assert_eq!(diff.matches("diff --git").count(), 1, "{diff}");
    let fixed = git(&bare, &["show", &format!("{branch}:calc.py")]);
    assert!(fixed.contains("return a + b"));
    assert!(
        git(&bare, &["show", "main:calc.py"]).contains(
            "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a - b"
        )
    );

    // The author may not approve their own task's change (four-eyes); a second person does,
    // and the review names them.
    let review_path = format!("/api/v1/pull-requests/{pr_id}/review");
    let (status, refused) = fleet.post(&review_path, json!({"action": "approve"})).await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("four-eyes"),
        "{refused}"
    );
    let (status, reviewed) = fleet
        .post_as_reviewer(
            &review_path,
            json!({"action": "approve", "comments": [{"file": "calc.py", "line": 6, "body": "Good catch"}]}),
        )
        .await;
    assert_eq!(status, 200, "{reviewed}");
    assert_eq!(reviewed["state"], "approved");
    let (_, pr) = fleet.get(&format!("/api/v1/pull-requests/{pr_id}")).await;
    assert_eq!(pr["state"], "approved");
    assert_eq!(pr["reviews"].as_array().unwrap().len(), 1);
    assert_eq!(pr["reviews"][0]["reviewer"], "e2e-reviewer");

    // Task and events survive restarts of the services that hold and serve them.
    for service in ["supervisor", "github", "gateway"] {
        fleet.fleet.restart(service).await.unwrap();
    }
    let (status, again) = fleet.get(&format!("/api/v1/tasks/{task_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(again["status"], "completed");
    assert_eq!(again["pull_request_id"], pr_id.as_str());
    let replayed = fleet.stream_events(&task_id).await.unwrap();
    assert_eq!(replayed, events);
    let (_, pr) = fleet.get(&format!("/api/v1/pull-requests/{pr_id}")).await;
    assert_eq!(pr["state"], "approved");

    // The task names who asked for it; the audit log holds what happened, in order.
    assert_eq!(again["requested_by"], "e2e-developer");
    assert_audit_trail(&fleet, &task_id, &pr_id, database_url.is_none()).await;

    // Every service refuses a caller without a certificate from the fleet's CA.
    assert_mtls_enforced(&fleet).await;
    assert_only_the_gateway_names_users(&fleet, &repository_id).await;
}

/// The audit log holds the task from request to review, in order; on SQLite the supervisor
/// and the GitHub service keep one chain each, on PostgreSQL they share one.
async fn assert_audit_trail(fleet: &TestFleet, task_id: &str, pr_id: &str, own_database: bool) {
    let mut databases = vec![fleet.fleet.supervisor_database_url()];
    if own_database {
        let github = fleet.fleet.config().data_dir.join("github.db");
        databases.push(cap_storage::sqlite_url(&github));
    }
    let key = cap_audit::PublicKey::read_from_dir(&fleet.fleet.audit_key_dir()).unwrap();
    let mut records = Vec::new();
    for url in &databases {
        let pool = cap_storage::open(url, &cap_audit::MIGRATOR).await.unwrap();
        records.extend(cap_audit::records(&pool, Some(task_id), 100).await.unwrap());
        // The shared PostgreSQL database holds other tests' chains, signed by other keys.
        if own_database {
            let report = cap_audit::verify(&pool, std::slice::from_ref(&key))
                .await
                .unwrap();
            assert!(report.is_intact(), "{url}: {report:?}");
        }
    }
    let trail: Vec<String> = records
        .iter()
        .map(|record| format!("{} {}", record.actor, record.action))
        .collect();
    assert_eq!(
        trail,
        [
            "e2e-developer task.submitted",
            "service:context-agent agent.finished",
            "service:coding-agent agent.finished",
            "service:testing-agent agent.finished",
            "service:supervisor commit.created",
            "service:supervisor pull_request.opened",
            "service:supervisor task.completed",
            "e2e-reviewer pull_request.reviewed",
        ]
    );
    let opened: serde_json::Value = serde_json::from_str(&records[5].details_json).unwrap();
    assert_eq!(opened["pull_request_id"], pr_id);
    let diff = opened["diff"].as_str().unwrap();
    assert!(
        diff.contains("-    return a - b\n+    return a + b"),
        "{diff}"
    );
}

/// A service other than the gateway cannot act as a user: the name it sends is not believed,
/// and the task names the service.
async fn assert_only_the_gateway_names_users(fleet: &TestFleet, repository_id: &str) {
    use cap_proto::supervisor::v1::SubmitTaskRequest;
    use cap_proto::supervisor::v1::task_service_client::TaskServiceClient;
    let url = format!("https://{}", fleet.fleet.grpc_addr("supervisor").unwrap());
    let own = fleet.fleet.pki().service("launcher").unwrap();
    let mut tasks = TaskServiceClient::new(own.channel(&url).unwrap());
    let mut request = tonic::Request::new(SubmitTaskRequest {
        repository_id: repository_id.to_owned(),
        prompt: "Say who asked".to_owned(),
        ..SubmitTaskRequest::default()
    });
    request
        .metadata_mut()
        .insert(cap_proto::ACTOR_METADATA, "admin".parse().unwrap());
    let task = tasks
        .submit_task(request)
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(task.requested_by, "service:launcher");
}

async fn assert_mtls_enforced(fleet: &TestFleet) {
    let foreign_dir = tempfile::tempdir().unwrap();
    // Writes supervisor.pem/.key signed by a CA the fleet does not know.
    cap_mtls::Pki::ensure_dev(foreign_dir.path())
        .unwrap()
        .service("supervisor")
        .unwrap();
    let own = fleet.fleet.pki().service("launcher").unwrap();
    for service in cap_fleet::SERVICES {
        let url = format!("https://{}", fleet.fleet.grpc_addr(service).unwrap());
        // The fleet's own certificate is accepted.
        let mut health = HealthClient::new(own.channel(&url).unwrap());
        health.check(HealthCheckRequest::default()).await.unwrap();
        // No client certificate: refused in the handshake.
        let no_cert = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(own.ca_pem()))
            .domain_name(cap_mtls::FLEET_DNS_NAME);
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .tls_config(no_cert)
            .unwrap()
            .connect_lazy();
        let refused = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await;
        assert!(
            refused.is_err(),
            "{service} answered a client without a certificate"
        );
        // A certificate from another CA: refused too (and the server is not trusted either).
        let foreign_config = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(own.ca_pem()))
            .identity(tonic::transport::Identity::from_pem(
                std::fs::read_to_string(foreign_dir.path().join("supervisor.pem")).unwrap(),
                std::fs::read_to_string(foreign_dir.path().join("supervisor.key")).unwrap(),
            ))
            .domain_name(cap_mtls::FLEET_DNS_NAME);
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .tls_config(foreign_config)
            .unwrap()
            .connect_lazy();
        let refused = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await;
        assert!(
            refused.is_err(),
            "{service} answered a client with a foreign certificate"
        );
    }
}
