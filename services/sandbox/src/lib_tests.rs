use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use pretty_assertions::assert_eq;
use tonic::Code;

use super::*;

#[test]
fn defaults_put_sessions_under_the_data_dir() {
    let config = Config::try_parse_from(["cap-sandbox", "--data-dir", "/var/lib/cap"]).unwrap();
    let sandbox = config.sandbox_config();
    assert_eq!(sandbox.root, PathBuf::from("/var/lib/cap/sandbox"));
    assert_eq!(sandbox.bwrap, PathBuf::from("/usr/bin/bwrap"));
    assert_eq!(sandbox.default_timeout, Duration::from_secs(900));
    assert_eq!(sandbox.max_timeout, Duration::from_secs(3600));
    assert_eq!(sandbox.output_cap_bytes, 1024 * 1024);
    assert_eq!(sandbox.limits, Limits::default());
    assert_eq!(sandbox.cgroup_root, Some(PathBuf::from("/sys/fs/cgroup")));
    assert_eq!(sandbox.term_grace, Duration::from_secs(5));
    assert_eq!(sandbox.egress, None);
}

#[test]
fn egress_flags_turn_the_proxy_on() {
    let config = Config::try_parse_from([
        "cap-sandbox",
        "--egress-allow",
        "registries,*.corp.example",
        "--egress-relay",
        "/opt/cap/relay",
    ])
    .unwrap();
    let egress = config.sandbox_config().egress.unwrap();
    assert_eq!(egress.relay, PathBuf::from("/opt/cap/relay"));
    assert!(egress.policy.allows_host("pypi.org"));
    assert!(egress.policy.allows_host("mirror.corp.example"));
    assert!(!egress.policy.allows_host("evil.example"));
}

#[test]
fn limit_flags_set_the_limits() {
    let config = Config::try_parse_from([
        "cap-sandbox",
        "--cpu-millis",
        "500",
        "--memory-bytes",
        "1000000",
        "--max-processes",
        "12",
        "--disk-bytes",
        "2000000",
        "--no-cgroups",
        "--term-grace-seconds",
        "0",
    ])
    .unwrap();
    let sandbox = config.sandbox_config();
    assert_eq!(
        sandbox.limits,
        Limits {
            cpu_millis: 500,
            memory_bytes: 1_000_000,
            max_processes: 12,
            disk_bytes: 2_000_000,
        }
    );
    assert_eq!(sandbox.cgroup_root, None);
    assert_eq!(sandbox.term_grace, Duration::ZERO);
    assert!(Config::try_parse_from(["cap-sandbox", "--memory-bytes", "-1"]).is_err());
}

#[test]
fn flags_override_the_defaults() {
    let config = Config::try_parse_from([
        "cap-sandbox",
        "--sessions-dir",
        "/srv/sessions",
        "--bwrap",
        "/opt/bwrap",
        "--default-timeout-seconds",
        "30",
        "--max-timeout-seconds",
        "60",
        "--output-cap-bytes",
        "4096",
    ])
    .unwrap();
    let sandbox = config.sandbox_config();
    assert_eq!(sandbox.root, PathBuf::from("/srv/sessions"));
    assert_eq!(sandbox.bwrap, PathBuf::from("/opt/bwrap"));
    assert_eq!(sandbox.default_timeout, Duration::from_secs(30));
    assert_eq!(sandbox.max_timeout, Duration::from_secs(60));
    assert_eq!(sandbox.output_cap_bytes, 4096);
    assert!(Config::try_parse_from(["cap-sandbox", "--output-cap-bytes", "lots"]).is_err());
}

#[test]
fn errors_map_to_codes_and_internal_details_stay_in_the_log() {
    let invalid = status(cap_sandbox::Error::InvalidPath {
        path: "../x".into(),
        reason: "`..` is not allowed",
    });
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(
        invalid.message(),
        "invalid path \"../x\": `..` is not allowed"
    );
    let missing = status(cap_sandbox::Error::PathNotFound {
        path: "a.txt".into(),
    });
    assert_eq!(missing.code(), Code::NotFound);
    let precondition = status(cap_sandbox::Error::CommitNotFound {
        url: "/r.git".into(),
        sha: "abc1234".into(),
    });
    assert_eq!(precondition.code(), Code::FailedPrecondition);
    let internal = status(cap_sandbox::Error::Io {
        action: "read",
        path: "/secret/host/path".into(),
        source: std::io::Error::other("disk on fire"),
    });
    assert_eq!(internal.code(), Code::Internal);
    assert!(
        !internal.message().contains("/secret/host/path"),
        "{}",
        internal.message()
    );
    assert!(
        !internal.message().contains("disk on fire"),
        "{}",
        internal.message()
    );
}

#[test]
fn wire_changes_must_say_what_to_do() {
    use cap_proto::common::v1::file_change::Change;
    let write = common::FileChange {
        path: "a".into(),
        change: Some(Change::Content(b"x".to_vec())),
    };
    assert_eq!(
        file_change(write).unwrap(),
        FileChange {
            path: "a".into(),
            content: Some(b"x".to_vec())
        }
    );
    let delete = common::FileChange {
        path: "a".into(),
        change: Some(Change::Deleted(true)),
    };
    assert_eq!(
        file_change(delete).unwrap(),
        FileChange {
            path: "a".into(),
            content: None
        }
    );
    for change in [None, Some(Change::Deleted(false))] {
        let error = file_change(common::FileChange {
            path: "a".into(),
            change,
        })
        .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);
    }
    assert_eq!(
        wire_change(FileChange {
            path: "b".into(),
            content: None
        }),
        common::FileChange {
            path: "b".into(),
            change: Some(Change::Deleted(true))
        }
    );
}
