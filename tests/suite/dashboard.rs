//! The dashboard in a real browser: a task submitted with the form, followed live, its pull
//! request approved with a click.

use std::path::Path;

use pretty_assertions::assert_eq;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_submits_watches_and_approves_in_the_dashboard() {
    let fleet = TestFleet::start(load_script("python-calculator.script.json"), None).await;
    let repository_id = format!("e2e/dashboard-{}", uuid::Uuid::new_v4().simple());
    fleet.create_repository(&repository_id, &fixtures().join("python-calculator"));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/dashboard.mjs");
    assert!(
        script
            .with_file_name("node_modules")
            .join("playwright-core")
            .exists(),
        "playwright-core is not installed in tests/browser (run `make deps`)"
    );
    let store = fleet.fleet.identity().await.unwrap();
    let mut passwords = Vec::new();
    for (user, role) in [
        ("viewer", cap_identity::Role::Viewer),
        ("developer", cap_identity::Role::Developer),
        ("reviewer", cap_identity::Role::Developer),
    ] {
        let password = cap_identity::password::generate().unwrap();
        store
            .add_user(
                user,
                role,
                Some(&password),
                cap_identity::DEFAULT_ORGANISATION,
            )
            .await
            .unwrap();
        passwords.push((format!("{}_PASSWORD", user.to_uppercase()), password));
    }
    let output = tokio::process::Command::new("node")
        .envs(passwords)
        .arg(&script)
        .arg(fleet.fleet.gateway_url())
        .arg(&repository_id)
        .output()
        .await
        .expect("node runs");
    assert!(
        output.status.success(),
        "browser script failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        fleet.logs()
    );
    let seen: serde_json::Value =
        serde_json::from_slice(output.stdout.trim_ascii()).expect("the script prints its result");

    // What the browser showed is what the API holds.
    let task_id = seen["task_id"].as_str().unwrap();
    let (_, task) = fleet.get(&format!("/api/v1/tasks/{task_id}")).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["repository_id"], repository_id.as_str());
    let pr_id = seen["pull_request_id"].as_str().unwrap();
    assert_eq!(task["pull_request_id"], pr_id);
    let (_, pr) = fleet.get(&format!("/api/v1/pull-requests/{pr_id}")).await;
    assert_eq!(pr["state"], "approved");
    assert_eq!(pr["reviews"][0]["reviewer"], "reviewer");
}
