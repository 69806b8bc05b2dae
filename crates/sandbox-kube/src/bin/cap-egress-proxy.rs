//! `cap-egress-proxy`: the Kubernetes backend's egress proxy, one Deployment in the sandbox
//! namespace. Session Pods reach only it (their NetworkPolicy), through `HTTPS_PROXY`; it
//! lets through only the allow-listed registries at public addresses and logs every
//! refusal. The policy and the proxy are `cap_sandbox`'s, as the local backend runs them.

use std::net::{IpAddr, SocketAddr};

use cap_sandbox::{EgressPolicy, EgressProxy};
use clap::Parser;

/// Flags of the egress proxy.
#[derive(Debug, Parser)]
#[command(
    name = "cap-egress-proxy",
    about = "Allow-listed HTTP CONNECT proxy for sandboxes."
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "CAP_EGRESS_LISTEN", default_value = "0.0.0.0:3128")]
    listen: SocketAddr,
    /// Hosts that may be reached (comma-separated; `*.example.org` for subdomains;
    /// `registries` for the public package registries).
    #[arg(long, env = "CAP_EGRESS_ALLOW", value_delimiter = ',', required = true)]
    allow: Vec<String>,
    /// Non-public addresses that may still be reached (an internal mirror), comma-separated.
    #[arg(long, env = "CAP_EGRESS_ALLOW_PRIVATE", value_delimiter = ',')]
    allow_private_address: Vec<IpAddr>,
}

impl Args {
    fn policy(&self) -> anyhow::Result<EgressPolicy> {
        let mut allowed_hosts = Vec::new();
        for host in self.allow.iter().map(|host| host.trim()) {
            match host {
                "" => {}
                "registries" => {
                    allowed_hosts.extend(EgressPolicy::package_registries().allowed_hosts);
                }
                host => allowed_hosts.push(host.to_owned()),
            }
        }
        anyhow::ensure!(
            !allowed_hosts.is_empty(),
            "--allow names no host: a proxy that lets nothing through is not needed"
        );
        Ok(EgressPolicy {
            allowed_hosts,
            allowed_private_addresses: self.allow_private_address.clone(),
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cap_runtime::init_tracing("egress-proxy");
    let proxy = EgressProxy::start(args.listen, args.policy()?).await?;
    cap_runtime::shutdown_signal().await;
    drop(proxy);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_allow_list_expands_registries_and_refuses_an_empty_one() {
        let args = Args::try_parse_from([
            "cap-egress-proxy",
            "--allow",
            "registries,*.corp.example",
            "--allow-private-address",
            "10.0.0.7",
        ])
        .unwrap();
        let policy = args.policy().unwrap();
        assert!(policy.allows_host("pypi.org"));
        assert!(policy.allows_host("mirror.corp.example"));
        assert!(!policy.allows_host("evil.example"));
        assert_eq!(
            policy.allowed_private_addresses,
            ["10.0.0.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(args.listen, "0.0.0.0:3128".parse().unwrap());
        let empty = Args::try_parse_from(["cap-egress-proxy", "--allow", " "]).unwrap();
        assert!(empty.policy().is_err());
        assert!(Args::try_parse_from(["cap-egress-proxy"]).is_err());
    }
}
