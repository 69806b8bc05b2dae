//! The testing agent served for real: mTLS on port 0, health, status, and a task whose
//! sandbox cannot be reached.

use std::net::SocketAddr;

use cap_mtls::Pki;
use cap_proto::agent::v1::agent_orchestrator_client::AgentOrchestratorClient;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{AgentId, RepositoryContext, TaskRequest};
use clap::Parser;
use pretty_assertions::assert_eq;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

struct Served {
    addr: SocketAddr,
    pki: tempfile::TempDir,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(sandbox_url: &str) -> anyhow::Result<Served> {
    let pki = tempfile::tempdir()?;
    let pki_dir = pki.path().to_str().unwrap_or_default().to_owned();
    let config = cap_testing_agent::Config::try_parse_from([
        "cap-testing-agent",
        "--pki-dir",
        &pki_dir,
        "--sandbox-url",
        sandbox_url,
        "--test-timeout-seconds",
        "30",
    ])?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(cap_testing_agent::serve(config, listener));
    Ok(Served { addr, pki, server })
}

fn client(served: &Served) -> anyhow::Result<AgentOrchestratorClient<tonic::transport::Channel>> {
    let tls = Pki::ensure_dev(served.pki.path())?.service("supervisor")?;
    Ok(AgentOrchestratorClient::new(
        tls.channel(&cap_runtime::https_url(served.addr))?,
    ))
}

async fn unreachable_url() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(cap_runtime::https_url(addr))
}

#[tokio::test]
async fn serves_health_and_status_over_mtls() -> anyhow::Result<()> {
    let served = serve(&unreachable_url().await?).await?;
    let tls = Pki::ensure_dev(served.pki.path())?.service("supervisor")?;
    let channel = tls.channel(&cap_runtime::https_url(served.addr))?;
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "cap.agent.v1.AgentOrchestrator".into(),
        })
        .await?
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);

    let status = client(&served)?
        .get_agent_status(AgentId::default())
        .await?
        .into_inner();
    assert_eq!(
        (status.agent.as_str(), status.state.as_str()),
        ("testing", "idle")
    );
    Ok(())
}

#[tokio::test]
async fn callers_without_a_fleet_certificate_are_refused() -> anyhow::Result<()> {
    let served = serve(&unreachable_url().await?).await?;
    let ca = Pki::ensure_dev(served.pki.path())?
        .service("supervisor")?
        .ca_pem()
        .to_owned();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name(cap_mtls::FLEET_DNS_NAME);
    let channel = Endpoint::from_shared(cap_runtime::https_url(served.addr))?
        .tls_config(tls)?
        .connect_lazy();
    let result = AgentOrchestratorClient::new(channel)
        .get_agent_status(AgentId::default())
        .await;
    assert!(
        result.is_err(),
        "a caller without a client certificate got {result:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_task_whose_sandbox_is_down_fails_with_a_report() -> anyhow::Result<()> {
    let served = serve(&unreachable_url().await?).await?;
    let request = TaskRequest {
        task_id: "task-1".into(),
        repo: Some(RepositoryContext {
            sandbox_session_id: "session-1".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut stream = client(&served)?.execute_task(request).await?.into_inner();
    let event = stream.message().await?.expect("an event");
    let Some(Payload::Error(report)) = event.payload else {
        panic!("error report expected, got {event:?}");
    };
    assert!(report.recoverable);
    let status = stream
        .message()
        .await
        .expect_err("the stream ends with an error");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status
            .message()
            .starts_with("the tests could not be run: sandbox ListDirectory failed"),
        "{}",
        status.message()
    );
    Ok(())
}

#[tokio::test]
async fn bad_requests_are_refused_before_streaming() -> anyhow::Result<()> {
    let served = serve(&unreachable_url().await?).await?;
    let status = client(&served)?
        .execute_task(TaskRequest {
            task_id: "t".into(),
            ..Default::default()
        })
        .await
        .expect_err("no repo");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "invalid task request: repo is missing; the testing agent needs repo.sandbox_session_id"
    );
    Ok(())
}
