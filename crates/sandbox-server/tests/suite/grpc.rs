use cap_mtls::Pki;
use cap_proto::common::v1::{FileChange, file_change::Change};
use cap_proto::sandbox::v1::exec_output::Output;
use cap_proto::sandbox::v1::sandbox_client::SandboxClient;
use cap_proto::sandbox::v1::*;
use cap_testkit::git::BareRepo;
use pretty_assertions::assert_eq;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

struct Harness {
    dir: tempfile::TempDir,
    pki: Pki,
    url: String,
    repo_url: String,
    commit: String,
}

impl Harness {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = BareRepo::new(
            dir.path(),
            &[
                ("app.py", "def add(a, b):\n    return a + b\n"),
                ("requirements.txt", ""),
            ],
        );
        let (repo_url, commit) = (repo.url(), repo.commit);
        let pki = Pki::ensure_dev(dir.path().join("pki")).unwrap();
        let (sandbox_url, _sandbox_server) =
            cap_sandbox_server::spawn_local(dir.path().join("sessions"), &pki)
                .await
                .unwrap();
        Self {
            dir,
            pki,
            url: sandbox_url,
            repo_url,
            commit,
        }
    }

    /// A client presenting the supervisor's certificate, as the fleet does.
    fn client(&self) -> SandboxClient<Channel> {
        let tls = self.pki.service("supervisor").unwrap();
        SandboxClient::new(tls.channel(&self.url).unwrap())
    }

    async fn session(&self, client: &mut SandboxClient<Channel>) -> String {
        let created = client
            .create_session(CreateSessionRequest {
                image: String::new(),
                repo_url: self.repo_url.clone(),
                commit_sha: self.commit.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(created.image, "coding-assistant/python");
        created.session_id
    }
}

fn exec_request(session_id: &str, command: &str, timeout_seconds: u32) -> ExecRequest {
    ExecRequest {
        session_id: session_id.to_owned(),
        command: command.to_owned(),
        cwd: String::new(),
        timeout_seconds,
        env: Default::default(),
    }
}

/// Collects an exec stream: stdout, stderr, the exit, and how many messages came.
async fn collect(
    client: &mut SandboxClient<Channel>,
    request: ExecRequest,
) -> Result<(String, String, ExitStatus), tonic::Status> {
    let mut stream = client.exec(request).await?.into_inner();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(message) = stream.message().await? {
        match message.output {
            Some(Output::Stdout(bytes)) => stdout.extend(bytes),
            Some(Output::Stderr(bytes)) => stderr.extend(bytes),
            Some(Output::Exit(exit)) => {
                assert!(
                    stream.message().await?.is_none(),
                    "exit is the last message"
                );
                return Ok((
                    String::from_utf8(stdout).unwrap(),
                    String::from_utf8(stderr).unwrap(),
                    exit,
                ));
            }
            None => panic!("empty exec message"),
        }
    }
    panic!("exec stream ended without an exit");
}

#[tokio::test]
async fn a_session_from_create_to_destroy() {
    let harness = Harness::start().await;
    let mut client = harness.client();
    let id = harness.session(&mut client).await;

    let (stdout, stderr, exit) = collect(
        &mut client,
        exec_request(&id, "echo hi; echo err >&2; exit 3", 60),
    )
    .await
    .unwrap();
    assert_eq!((stdout.as_str(), stderr.as_str()), ("hi\n", "err\n"));
    assert_eq!(
        (exit.exit_code, exit.timed_out, exit.output_truncated),
        (3, false, false)
    );

    let (stdout, _, exit) = collect(&mut client, exec_request(&id, "echo one-second", 1))
        .await
        .unwrap();
    assert_eq!((stdout.as_str(), exit.exit_code), ("one-second\n", 0));

    let (_, _, exit) = collect(&mut client, exec_request(&id, "sleep 100", 1))
        .await
        .unwrap();
    assert!(exit.timed_out);
    assert_eq!(exit.exit_code, -1);

    let written = client
        .write_files(WriteFilesRequest {
            session_id: id.clone(),
            changes: vec![
                FileChange {
                    path: "app.py".into(),
                    change: Some(Change::Content(
                        b"def add(a, b):\n    return b + a\n".to_vec(),
                    )),
                },
                FileChange {
                    path: "requirements.txt".into(),
                    change: Some(Change::Deleted(true)),
                },
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(written.files_written, 2);
    let read = client
        .read_file(ReadFileRequest {
            session_id: id.clone(),
            path: "app.py".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        read.into_inner().content,
        b"def add(a, b):\n    return b + a\n"
    );

    let listed = client
        .list_directory(ListDirectoryRequest {
            session_id: id.clone(),
            path: String::new(),
            recursive: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.entries,
        vec![DirectoryEntry {
            path: "app.py".into(),
            is_dir: false,
            size: 32
        }]
    );

    let found = client
        .search_files(SearchFilesRequest {
            session_id: id.clone(),
            pattern: "return".into(),
            glob: "*.py".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        found.matches,
        vec![SearchMatch {
            path: "app.py".into(),
            line_number: 2,
            line: "    return b + a".into()
        }]
    );

    let changes = client
        .get_changes(GetChangesRequest {
            session_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let paths: Vec<_> = changes
        .changes
        .iter()
        .map(|c| (c.path.as_str(), c.change.clone()))
        .collect();
    assert_eq!(
        paths,
        [
            (
                "app.py",
                Some(Change::Content(
                    b"def add(a, b):\n    return b + a\n".to_vec()
                ))
            ),
            ("requirements.txt", Some(Change::Deleted(true))),
        ]
    );
    assert!(
        changes
            .diff
            .contains("-    return a + b\n+    return b + a\n"),
        "{}",
        changes.diff
    );

    client
        .destroy_session(DestroySessionRequest {
            session_id: id.clone(),
        })
        .await
        .unwrap();
    let gone = client
        .read_file(ReadFileRequest {
            session_id: id.clone(),
            path: "app.py".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let again = client
        .destroy_session(DestroySessionRequest { session_id: id })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    // (Dot entries are the sandbox's own: checkout cache, seccomp program, trash being removed.)
    assert!(
        std::fs::read_dir(harness.dir.path().join("sessions"))
            .unwrap()
            .all(|entry| entry
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.'))
    );
}

/// `ExecRequest` with `command` as raw bytes, to send what a typed client cannot.
#[derive(Clone, PartialEq, prost::Message)]
struct RawExecRequest {
    #[prost(string, tag = "1")]
    session_id: String,
    #[prost(bytes = "vec", tag = "2")]
    command: Vec<u8>,
    #[prost(uint32, tag = "4")]
    timeout_seconds: u32,
}

async fn exec_raw(
    harness: &Harness,
    session_id: &str,
    command: &[u8],
) -> Result<(), tonic::Status> {
    let tls = harness.pki.service("supervisor").unwrap();
    let channel = tls.channel(&harness.url).unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec: tonic_prost::ProstCodec<RawExecRequest, ExecOutput> =
        tonic_prost::ProstCodec::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/cap.sandbox.v1.Sandbox/Exec");
    let request = RawExecRequest {
        session_id: session_id.to_owned(),
        command: command.to_vec(),
        timeout_seconds: 10,
    };
    let mut stream = grpc
        .server_streaming(tonic::Request::new(request), path, codec)
        .await?
        .into_inner();
    while stream.message().await?.is_some() {}
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_precise_codes() {
    let harness = Harness::start().await;
    let mut client = harness.client();
    let id = harness.session(&mut client).await;

    let missing = "7d444840-9dc0-11d1-b245-5ffdce74fad2";
    let error = collect(&mut client, exec_request(missing, "true", 10))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound, "{error}");
    let error = collect(&mut client, exec_request("not-a-uuid", "true", 10))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error}");

    let error = collect(&mut client, exec_request(&id, "true", 4_000_000))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error}");
    assert!(error.message().contains("timeout"), "{}", error.message());
    let error = collect(&mut client, exec_request(&id, "true", 3601))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error}");
    // Zero is refused, not taken as a default.
    let error = collect(&mut client, exec_request(&id, "true", 0))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error}");
    assert!(error.message().contains("timeout"), "{}", error.message());
    // A command that is not UTF-8 (sent by a client that ignores the contract's types).
    let error = exec_raw(&harness, &id, b"echo \xff\xfe").await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error}");
    assert!(error.message().contains("UTF-8"), "{}", error.message());
    let error = collect(&mut client, exec_request(&id, "", 10))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error}");
    // The session still works after all of that.
    let (stdout, _, exit) = collect(&mut client, exec_request(&id, "echo fine", 10))
        .await
        .unwrap();
    assert_eq!((stdout.as_str(), exit.exit_code), ("fine\n", 0));

    let error = client
        .read_file(ReadFileRequest {
            session_id: id.clone(),
            path: "../../etc/passwd".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("../../etc/passwd"),
        "{}",
        error.message()
    );

    let error = client
        .write_files(WriteFilesRequest {
            session_id: id.clone(),
            changes: vec![FileChange {
                path: "x.txt".into(),
                change: None,
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("x.txt"), "{}", error.message());

    let error = client
        .search_files(SearchFilesRequest {
            session_id: id.clone(),
            pattern: "(".into(),
            glob: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);

    let error = client
        .create_session(CreateSessionRequest {
            image: String::new(),
            repo_url: harness.repo_url.clone(),
            commit_sha: "0123456789abcdef0123456789abcdef01234567".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "{error}");
    let error = client
        .create_session(CreateSessionRequest {
            image: "ubuntu:22.04".into(),
            repo_url: harness.repo_url.clone(),
            commit_sha: harness.commit.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error}");
}

#[tokio::test]
async fn health_is_served_next_to_the_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let harness = Harness::start().await;
    let tls = harness.pki.service("supervisor").unwrap();
    let mut health = HealthClient::new(tls.channel(&harness.url).unwrap());
    let reply = health
        .check(HealthCheckRequest {
            service: "cap.sandbox.v1.Sandbox".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status(), ServingStatus::Serving);
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let harness = Harness::start().await;
    let ca = harness
        .pki
        .service("supervisor")
        .unwrap()
        .ca_pem()
        .to_owned();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name(cap_mtls::FLEET_DNS_NAME);
    let endpoint = Endpoint::from_shared(harness.url.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap();
    let attempt = async {
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
        SandboxClient::new(channel)
            .create_session(CreateSessionRequest {
                image: String::new(),
                repo_url: harness.repo_url.clone(),
                commit_sha: harness.commit.clone(),
            })
            .await
    };
    let refused = attempt.await.unwrap_err();
    // Refused in the TLS handshake (rustls: "received fatal alert: CertificateRequired").
    assert!(
        format!("{refused:?}").contains("CertificateRequired"),
        "{refused:?}"
    );
    // Nothing was created.
    // (Dot entries are the sandbox's own: checkout cache, seccomp program, trash being removed.)
    assert!(
        std::fs::read_dir(harness.dir.path().join("sessions"))
            .unwrap()
            .all(|entry| entry
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.'))
    );
}
