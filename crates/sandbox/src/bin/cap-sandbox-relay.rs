//! `cap-sandbox-relay <unix socket> <port> <command> [args...]`: runs inside a sandbox whose
//! egress goes through the service's proxy. The sandbox's network namespace has only its own
//! loopback; this listens on `127.0.0.1:<port>` there and carries each connection to the
//! proxy's Unix socket (bind-mounted in), then runs the command and exits with its status.
//! It decides nothing: the proxy on the other side of the socket checks every request.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;

/// The exit status of the relay's own failures (like `env` and `timeout`).
const FAILED: i32 = 125;

fn fail(message: &str) -> ! {
    eprintln!("cap-sandbox-relay: {message}");
    std::process::exit(FAILED)
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let usage = "usage: cap-sandbox-relay <unix socket> <port> <command> [args...]";
    let socket = PathBuf::from(args.next().unwrap_or_else(|| fail(usage)));
    let port: u16 = args
        .next()
        .and_then(|port| port.to_str()?.parse().ok())
        .unwrap_or_else(|| fail(usage));
    let program = args.next().unwrap_or_else(|| fail(usage));
    let listener = TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|error| fail(&format!("cannot listen on 127.0.0.1:{port}: {error}")));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let socket = socket.clone();
            std::thread::spawn(move || relay(client, &socket));
        }
    });
    let status = Command::new(&program)
        .args(args)
        .status()
        .unwrap_or_else(|error| {
            fail(&format!(
                "cannot start {}: {error}",
                program.to_string_lossy()
            ))
        });
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1);
    std::process::exit(code)
}

/// Copies both ways between a client and a new connection to the proxy.
fn relay(client: TcpStream, socket: &std::path::Path) {
    let Ok(proxy) = UnixStream::connect(socket) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(client_read), Ok(proxy_read)) = (client.try_clone(), proxy.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || {
        copy(client_read, &proxy);
        let _ = proxy.shutdown(Shutdown::Write);
    });
    copy(proxy_read, &client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = upstream.join();
}

fn copy(mut from: impl Read, mut to: impl Write) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
