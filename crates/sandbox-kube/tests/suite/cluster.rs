//! Against a real cluster (CI runs these on k3d with gVisor: `-- --ignored`): the
//! namespace, proxy and image prefix come from `CAP_TEST_KUBE_NAMESPACE`,
//! `CAP_TEST_KUBE_PROXY_URL` and `CAP_TEST_KUBE_IMAGE_PREFIX`, the cluster from `KUBECONFIG`.

use std::time::Duration;

use cap_sandbox_kube::{ExecEvent, ExecSpec, KubeConfig, KubeSandbox};
use futures::StreamExt;

use super::repo;

#[tokio::test]
#[ignore = "needs cluster"]
async fn a_session_runs_in_a_gvisor_pod_and_is_deleted() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let dir = tempfile::tempdir().unwrap();
    let (repo_url, sha) = repo::python_project(dir.path());
    let mut config = KubeConfig::new(
        var("CAP_TEST_KUBE_NAMESPACE"),
        var("CAP_TEST_KUBE_PROXY_URL"),
    );
    config.image_prefix = std::env::var("CAP_TEST_KUBE_IMAGE_PREFIX").unwrap_or_default();
    config.scratch_dir = dir.path().to_owned();
    let backend = KubeSandbox::connect(config).await.unwrap();
    let info = backend.create_session(&repo_url, &sha, "").await.unwrap();
    let session = info.session_id.to_string();
    let spec = ExecSpec {
        // gVisor's kernel announces itself in dmesg; the tree is in the workspace.
        command: "cat src/app.py; dmesg | grep -c gVisor".into(),
        timeout: Some(Duration::from_secs(60)),
        ..ExecSpec::default()
    };
    let events: Vec<ExecEvent> = backend.exec(&session, spec).await.unwrap().collect().await;
    let stdout: Vec<u8> = events
        .iter()
        .filter_map(|event| match event {
            ExecEvent::Stdout(bytes) => Some(bytes.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    let stdout = String::from_utf8(stdout).unwrap();
    assert!(stdout.starts_with("print('hello')\n"), "{stdout}");
    assert!(
        matches!(events.last(), Some(ExecEvent::Exit(exit)) if exit.exit_code == 0),
        "{events:?}"
    );
    backend.destroy_session(&session).await.unwrap();
    // Deleted with no grace period, the Pod is gone once the kubelet has stopped it.
    while backend.sessions().await.unwrap().contains(&session) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
