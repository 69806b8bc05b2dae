//! The egress proxy against real sockets on loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use cap_sandbox::{EgressConfig, EgressPolicy, EgressProxy, RefusalReason};
use pretty_assertions::assert_eq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::support::{fixture, fixture_with, run, spec_timeout};

/// Sends `request` through the proxy; returns the response head and the open stream.
async fn ask(proxy: SocketAddr, request: &str) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (String::from_utf8(head).unwrap(), stream)
}

/// A stand-in registry on loopback that echoes what it gets.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    port
}

fn listen() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test]
async fn hosts_off_the_list_and_loopback_names_are_refused_and_reported() {
    let registry = echo_server().await;
    let policy = EgressPolicy {
        allowed_hosts: vec!["localhost".into(), "127.0.0.1".into()],
        allowed_private_addresses: Vec::new(),
    };
    let proxy = EgressProxy::start(listen(), policy).await.unwrap();

    let (head, _) = ask(
        proxy.addr().unwrap(),
        "CONNECT evil.example:443 HTTP/1.1\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    // On the list, but a loopback address by name and by number.
    let (head, _) = ask(
        proxy.addr().unwrap(),
        &format!("CONNECT localhost:{registry} HTTP/1.1\r\n\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let (head, _) = ask(
        proxy.addr().unwrap(),
        &format!("CONNECT 127.0.0.1:{registry} HTTP/1.1\r\n\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let (head, _) = ask(
        proxy.addr().unwrap(),
        "GET http://pypi.org/ HTTP/1.1\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");

    let refusals = proxy.refusals();
    assert_eq!(refusals.len(), 4, "{refusals:?}");
    assert_eq!(refusals[0].host, "evil.example");
    assert_eq!(refusals[0].reason, RefusalReason::HostNotAllowed);
    assert!(
        matches!(refusals[1].reason, RefusalReason::NonPublicAddress(ip) if ip.is_loopback()),
        "{refusals:?}"
    );
    assert_eq!(
        refusals[2].reason,
        RefusalReason::NonPublicAddress(Ipv4Addr::LOCALHOST.into())
    );
    assert!(matches!(refusals[3].reason, RefusalReason::BadRequest(_)));
}

#[tokio::test]
async fn an_allowed_host_is_tunnelled() {
    let registry = echo_server().await;
    // A mirror at a private address passes only when that address is named.
    let policy = EgressPolicy {
        allowed_hosts: vec!["localhost".into()],
        allowed_private_addresses: vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ],
    };
    let proxy = EgressProxy::start(listen(), policy).await.unwrap();
    let (head, mut stream) = ask(
        proxy.addr().unwrap(),
        &format!("CONNECT localhost:{registry} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    stream.write_all(b"ping").await.unwrap();
    let mut answer = [0u8; 4];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"ping");
    assert_eq!(proxy.refusals(), vec![]);
}

#[tokio::test]
async fn the_sandbox_cannot_reach_the_proxy_port_directly() {
    // Deny-all: even the proxy, listening on the host's loopback, is out of reach from the
    // sandbox's own network namespace.
    let proxy = EgressProxy::start(listen(), EgressPolicy::package_registries())
        .await
        .unwrap();
    let fx = fixture().await;
    let id = fx.session().await;
    let command = format!(
        "curl -sS -m 5 -x http://127.0.0.1:{port} https://pypi.org/simple/ 2>&1; echo exit=$?",
        port = proxy.addr().unwrap().port()
    );
    let ran = run(&fx.sandbox, &id, spec_timeout(&command, 20)).await;
    assert!(ran.stdout.contains("exit=7"), "{ran:?}");
    assert_eq!(proxy.refusals(), vec![]);
}

/// A stand-in registry: answers every HTTP request with `hello`.
async fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                    )
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_sandbox_reaches_listed_hosts_through_the_proxy_and_nothing_else() {
    let registry = http_server().await;
    let fx = fixture_with(|config| {
        config.egress = Some(EgressConfig {
            policy: EgressPolicy {
                allowed_hosts: vec!["localhost".into()],
                allowed_private_addresses: vec![
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ],
            },
            relay: env!("CARGO_BIN_EXE_cap-sandbox-relay").into(),
        });
    })
    .await;
    let id = fx.session().await;
    // Through the proxy (CONNECT, as for https): the listed host answers.
    let ran = run(
        &fx.sandbox,
        &id,
        spec_timeout(
            &format!("curl -sS -m 10 -p http://localhost:{registry}/simple/"),
            30,
        ),
    )
    .await;
    assert_eq!(
        (ran.stdout.as_str(), ran.exit.exit_code),
        ("hello", 0),
        "{}",
        ran.stderr
    );
    // A host off the list, and an address instead of the listed name: refused and reported.
    let ran = run(
        &fx.sandbox,
        &id,
        spec_timeout(
            &format!(
                "curl -sS -m 10 -p http://evil.example/ 2>&1; echo exit=$?; \
                 curl -sS -m 10 -p http://127.0.0.1:{registry}/ 2>&1; echo exit=$?"
            ),
            30,
        ),
    )
    .await;
    assert_eq!(ran.stdout.matches("exit=56").count(), 2, "{ran:?}");
    assert!(ran.stdout.contains("403"), "{}", ran.stdout);
    let refusals = fx.sandbox.egress_refusals();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert_eq!(refusals[0].host, "evil.example");
    assert_eq!(refusals[1].host, "127.0.0.1");
    assert!(
        refusals
            .iter()
            .all(|r| r.reason == RefusalReason::HostNotAllowed)
    );
    // Around the proxy there is still no way out.
    let ran = run(
        &fx.sandbox,
        &id,
        spec_timeout(
            &format!("curl -sS -m 5 --noproxy '*' http://127.0.0.1:{registry}/ 2>&1; echo exit=$?"),
            20,
        ),
    )
    .await;
    assert!(ran.stdout.contains("exit=7"), "{ran:?}");
}
