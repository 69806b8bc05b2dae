//! `sandbox-bench [runs]`: a session's whole life, create + exec `true` + destroy, measured
//! `runs` times (default 200) in-process and through the service's gRPC API over mutual
//! TLS; `exec true` alone the same two ways; create + destroy of a commit already seen (from
//! the checkout cache) and of a new commit each time (a clone); and, in the same run as
//! baselines, a plain process spawn of `true` and a bare `bwrap --ro-bind / / true`. Prints
//! p50 and p99 of each and the ratios against the baselines. Needs what the sandbox needs
//! (root for cgroups, bubblewrap, git). Build with `--release`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use cap_mtls::Pki;
use cap_proto::sandbox::v1 as pb;
use cap_proto::sandbox::v1::sandbox_client::SandboxClient;
use cap_sandbox::{ExecEvent, ExecSpec, Sandbox, SandboxConfig};
use futures::StreamExt;
use tokio::process::Command;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = match std::env::args().nth(1) {
        Some(text) => text.parse().context("usage: sandbox-bench [runs]")?,
        None => 200,
    };
    if runs < 2 {
        bail!("at least 2 runs");
    }
    let dir = std::env::temp_dir().join(format!("cap-sandbox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = bench(&dir, runs).await;
    std::fs::remove_dir_all(&dir).ok();
    result
}

async fn bench(dir: &Path, runs: usize) -> anyhow::Result<()> {
    let (repo_url, commit) = make_repo(dir).await?;
    let mut config = SandboxConfig::new(dir.join("sessions"));
    if std::env::args().any(|arg| arg == "--no-cgroups") {
        println!("cgroups: off (no CPU, memory or process limits)");
        config.cgroup_root = None;
    }
    let sandbox = Sandbox::new(config).await?;

    let pki = Pki::ensure_dev(dir.join("pki"))?;
    let tls = pki.service(cap_sandbox_server::SERVICE_NAME)?;
    let router = cap_sandbox_server::router(sandbox.clone(), &tls).await?;
    let listener = cap_runtime::bind("127.0.0.1:0".parse()?, None).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(cap_runtime::serve(router, listener));
    let client_tls = pki.service("supervisor")?;
    let client = SandboxClient::new(client_tls.channel(&cap_runtime::https_url(addr))?);

    println!("runs: {runs} of each (after {WARM_UP} warm-up runs)");
    let spawn = measure(runs, || async {
        let status = Command::new("true").stdin(Stdio::null()).status().await?;
        anyhow::ensure!(status.success(), "true failed");
        Ok(())
    })
    .await?;
    let bwrap = measure(runs, || async {
        let status = Command::new("bwrap")
            .args(["--ro-bind", "/", "/", "true"])
            .stdin(Stdio::null())
            .status()
            .await?;
        anyhow::ensure!(status.success(), "bwrap true failed");
        Ok(())
    })
    .await?;

    let id = sandbox
        .create_session(&repo_url, &commit, "")
        .await?
        .session_id;
    let exec_in_process = measure(runs, || exec_true(&sandbox, id.to_string())).await?;
    let session = id.to_string();
    let exec_grpc = measure(runs, || {
        let mut client = client.clone();
        let session = session.clone();
        async move { exec_true_grpc(&mut client, session).await }
    })
    .await?;
    sandbox.destroy_session(&session).await?;

    let life_in_process = measure(runs, || {
        let sandbox = sandbox.clone();
        let (repo_url, commit) = (repo_url.clone(), commit.clone());
        async move {
            let info = sandbox.create_session(&repo_url, &commit, "").await?;
            let id = info.session_id.to_string();
            exec_true(&sandbox, id.clone()).await?;
            sandbox.destroy_session(&id).await?;
            Ok(())
        }
    })
    .await?;
    let create_destroy = measure(runs, || {
        let sandbox = sandbox.clone();
        let (repo_url, commit) = (repo_url.clone(), commit.clone());
        async move {
            let info = sandbox.create_session(&repo_url, &commit, "").await?;
            sandbox
                .destroy_session(&info.session_id.to_string())
                .await?;
            Ok(())
        }
    })
    .await?;
    // A new commit each time: nothing cached, the repository is cloned.
    let fresh_commits = make_commits(dir, runs + WARM_UP).await?;
    let mut fresh = fresh_commits.iter();
    let create_destroy_cold = measure(runs, || {
        let sandbox = sandbox.clone();
        let repo_url = repo_url.clone();
        let commit = fresh.next().cloned().unwrap_or_default();
        async move {
            let info = sandbox.create_session(&repo_url, &commit, "").await?;
            sandbox
                .destroy_session(&info.session_id.to_string())
                .await?;
            Ok(())
        }
    })
    .await?;
    let life_grpc = measure(runs, || {
        let mut client = client.clone();
        let (repo_url, commit) = (repo_url.clone(), commit.clone());
        async move {
            let created = client
                .create_session(pb::CreateSessionRequest {
                    image: String::new(),
                    repo_url,
                    commit_sha: commit,
                })
                .await?
                .into_inner();
            exec_true_grpc(&mut client, created.session_id.clone()).await?;
            client
                .destroy_session(pb::DestroySessionRequest {
                    session_id: created.session_id,
                })
                .await?;
            Ok(())
        }
    })
    .await?;

    println!();
    println!(
        "{:<44} {:>9} {:>9} {:>10} {:>10}",
        "", "p50 ms", "p99 ms", "p50/bwrap", "p50/spawn"
    );
    let row = |name: &str, stats: &Stats| {
        println!(
            "{name:<44} {:>9.2} {:>9.2} {:>9.1}x {:>9.1}x",
            ms(stats.p50),
            ms(stats.p99),
            ratio(stats.p50, bwrap.p50),
            ratio(stats.p50, spawn.p50),
        );
    };
    row("baseline: spawn `true`", &spawn);
    row("baseline: bare `bwrap --ro-bind / / true`", &bwrap);
    row("exec `true`, in-process", &exec_in_process);
    row("exec `true`, gRPC over mTLS", &exec_grpc);
    row("create + destroy, new commit (clone)", &create_destroy_cold);
    row("create + destroy, commit seen (cached)", &create_destroy);
    row(
        "create + exec `true` + destroy, in-process",
        &life_in_process,
    );
    row("create + exec `true` + destroy, gRPC/mTLS", &life_grpc);
    println!();
    println!(
        "targets through the API: p50 < 20 ms ({}), p99 < 50 ms ({})",
        verdict(life_grpc.p50 < Duration::from_millis(20)),
        verdict(life_grpc.p99 < Duration::from_millis(50)),
    );
    // The sandbox unmounts its workspace filesystems when its last handle goes (the
    // server's, and the background removals'): wait for that before the directory goes.
    server.abort();
    let _ = server.await;
    drop((client, sandbox));
    let mounts_under = |dir: &Path| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .is_ok_and(|mounts| mounts.contains(&*dir.to_string_lossy()))
    };
    while mounts_under(dir) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Runs before each measurement, not counted.
const WARM_UP: usize = 5;

struct Stats {
    p50: Duration,
    p99: Duration,
}

async fn measure<F, Fut>(runs: usize, mut once: F) -> anyhow::Result<Stats>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for _ in 0..WARM_UP {
        once().await?;
    }
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        once().await?;
        samples.push(start.elapsed());
    }
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[index.min(samples.len() - 1)]
    };
    Ok(Stats {
        p50: at(0.50),
        p99: at(0.99),
    })
}

async fn exec_true(sandbox: &Sandbox, session: String) -> anyhow::Result<()> {
    let spec = ExecSpec {
        command: "true".into(),
        timeout: Some(Duration::from_secs(30)),
        ..Default::default()
    };
    let mut events = sandbox.exec(&session, spec).await?;
    while let Some(event) = events.next().await {
        if let ExecEvent::Exit(exit) = event {
            anyhow::ensure!(exit.exit_code == 0, "exec true: {exit:?}");
            return Ok(());
        }
    }
    bail!("exec stream ended without an exit")
}

async fn exec_true_grpc(
    client: &mut SandboxClient<tonic::transport::Channel>,
    session: String,
) -> anyhow::Result<()> {
    let mut stream = client
        .exec(pb::ExecRequest {
            session_id: session,
            command: "true".into(),
            cwd: String::new(),
            timeout_seconds: 30,
            env: Default::default(),
        })
        .await?
        .into_inner();
    while let Some(message) = stream.message().await? {
        if let Some(pb::exec_output::Output::Exit(exit)) = message.output {
            anyhow::ensure!(exit.exit_code == 0, "exec true: {exit:?}");
            return Ok(());
        }
    }
    bail!("exec stream ended without an exit")
}

/// A one-file repository, cloned bare: the smallest session there is.
async fn make_repo(dir: &Path) -> anyhow::Result<(String, String)> {
    let work = dir.join("work");
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("app.py"), "def add(a, b):\n    return a + b\n")?;
    git(&work, &["init", "--quiet"]).await?;
    git(&work, &["add", "."]).await?;
    git(&work, &["commit", "--quiet", "-m", "init"]).await?;
    let commit = git(&work, &["rev-parse", "HEAD"]).await?;
    let bare: PathBuf = dir.join("remote.git");
    let (work_text, bare_text) = (work.display().to_string(), bare.display().to_string());
    git(dir, &["clone", "--quiet", "--bare", &work_text, &bare_text]).await?;
    Ok((bare_text, commit))
}

/// `count` new commits on top of the bench repository, pushed to its bare remote.
async fn make_commits(dir: &Path, count: usize) -> anyhow::Result<Vec<String>> {
    let work = dir.join("work");
    let mut commits = Vec::with_capacity(count);
    for index in 0..count {
        std::fs::write(work.join("app.py"), format!("VERSION = {index}\n"))?;
        git(&work, &["commit", "--quiet", "-am", "next"]).await?;
        commits.push(git(&work, &["rev-parse", "HEAD"]).await?);
    }
    let bare = dir.join("remote.git").display().to_string();
    git(&work, &["push", "--quiet", &bare, "HEAD:refs/heads/bench"]).await?;
    Ok(commits)
}

async fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args([
            "-c",
            "user.name=Bench",
            "-c",
            "user.email=bench@example.com",
        ])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn ratio(value: Duration, base: Duration) -> f64 {
    value.as_secs_f64() / base.as_secs_f64().max(f64::EPSILON)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}
