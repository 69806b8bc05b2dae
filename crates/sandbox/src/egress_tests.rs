use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pretty_assertions::assert_eq;

use super::*;

#[test]
fn hosts_match_exactly_or_by_subdomain() {
    let policy = EgressPolicy {
        allowed_hosts: vec!["pypi.org".into(), "*.pythonhosted.org".into()],
        allowed_private_addresses: Vec::new(),
    };
    for host in ["pypi.org", "PyPI.org.", "files.pythonhosted.org"] {
        assert!(policy.allows_host(host), "{host}");
    }
    for host in [
        "evil.org",
        "pypi.org.evil.org",
        "notpypi.org",
        "pythonhosted.org",
        "xpythonhosted.org",
        "",
    ] {
        assert!(!policy.allows_host(host), "{host}");
    }
    assert!(EgressPolicy::package_registries().allows_host("registry.npmjs.org"));
}

#[test]
fn only_connect_requests_with_a_host_and_port_parse() {
    assert_eq!(
        parse_connect("CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org\r\n\r\n").unwrap(),
        ("pypi.org".to_owned(), 443)
    );
    assert_eq!(
        parse_connect("CONNECT [::1]:8080 HTTP/1.1\r\n\r\n").unwrap(),
        ("::1".to_owned(), 8080)
    );
    for bad in [
        "GET http://pypi.org/ HTTP/1.1\r\n\r\n",
        "CONNECT pypi.org HTTP/1.1\r\n\r\n",
        "CONNECT pypi.org:0 HTTP/1.1\r\n\r\n",
        "CONNECT pypi.org:99999 HTTP/1.1\r\n\r\n",
        "CONNECT pypi.org:443\r\n\r\n",
        "CONNECT a/b:443 HTTP/1.1\r\n\r\n",
        "",
    ] {
        assert!(parse_connect(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn non_public_addresses_are_recognised() {
    let private: [IpAddr; 12] = [
        Ipv4Addr::LOCALHOST.into(),
        Ipv4Addr::new(10, 1, 2, 3).into(),
        Ipv4Addr::new(172, 16, 0, 1).into(),
        Ipv4Addr::new(192, 168, 1, 1).into(),
        Ipv4Addr::new(169, 254, 169, 254).into(),
        Ipv4Addr::new(100, 64, 0, 1).into(),
        Ipv4Addr::UNSPECIFIED.into(),
        Ipv6Addr::LOCALHOST.into(),
        "fd00::1".parse().unwrap(),
        "fe80::1".parse().unwrap(),
        "::ffff:127.0.0.1".parse().unwrap(),
        "64:ff9b::a00:1".parse().unwrap(),
    ];
    for ip in private {
        assert!(!is_public(ip), "{ip}");
    }
    for ip in ["151.101.0.223", "2a04:4e42::223", "8.8.8.8"] {
        assert!(is_public(ip.parse().unwrap()), "{ip}");
    }
}
