use std::collections::BTreeMap;

use pretty_assertions::assert_eq;

use super::*;

#[test]
fn exit_codes_come_from_the_exec_status() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
    let success = Status {
        status: Some("Success".into()),
        ..Default::default()
    };
    assert_eq!(exit_code(&success), 0);
    let failed = Status {
        status: Some("Failure".into()),
        reason: Some("NonZeroExitCode".into()),
        details: Some(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some("ExitCode".into()),
                message: Some("3".into()),
                field: None,
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(exit_code(&failed), 3);
    assert_eq!(exit_code(&Status::default()), -1);
}

#[test]
fn workspace_paths_are_plain_and_relative() {
    assert_eq!(workspace_path("src/./a.py", false).unwrap(), "src/a.py");
    assert_eq!(workspace_path("", true).unwrap(), "");
    assert_eq!(workspace_path("./", true).unwrap(), "");
    for (path, allow_root, reason) in [
        ("", false, "names no file"),
        ("/etc/passwd", false, "must be relative to the workspace"),
        ("src/../../x", false, "`..` is not allowed"),
        ("a\0b", false, "contains a NUL byte"),
    ] {
        let error = workspace_path(path, allow_root).unwrap_err();
        assert!(
            matches!(&error, Error::InvalidPath { reason: got, .. } if *got == reason),
            "{path:?}: {error}"
        );
    }
}

#[test]
fn a_command_runs_in_its_directory_with_its_environment_as_arguments() {
    let spec = ExecSpec {
        command: "echo \"$GREETING\" > out.txt".into(),
        cwd: "sub/dir".into(),
        timeout: None,
        env: BTreeMap::from([("GREETING".to_owned(), "it's $(not) run".to_owned())]),
    };
    assert_eq!(
        exec_argv(&spec).unwrap(),
        [
            "/bin/sh",
            "-c",
            "cd \"$0\" && exec env \"$@\"",
            "/workspace/sub/dir",
            "GREETING=it's $(not) run",
            "/bin/sh",
            "-c",
            "echo \"$GREETING\" > out.txt",
        ]
    );
}

#[test]
fn bad_commands_and_environments_are_refused() {
    let spec = |command: &str, name: &str| ExecSpec {
        command: command.into(),
        env: BTreeMap::from([(name.to_owned(), "v".to_owned())]),
        ..ExecSpec::default()
    };
    assert!(matches!(
        exec_argv(&spec(" ", "A")),
        Err(Error::InvalidCommand("is empty"))
    ));
    assert!(matches!(
        exec_argv(&spec("true\0", "A")),
        Err(Error::InvalidCommand(_))
    ));
    for name in ["lower", "1ABC", "A-B", "", "LD PRELOAD"] {
        let error = exec_argv(&spec("true", name)).unwrap_err();
        assert!(
            matches!(&error, Error::InvalidEnv { name: got } if got == name),
            "{error}"
        );
    }
    let outside = ExecSpec {
        command: "true".into(),
        cwd: "../..".into(),
        ..ExecSpec::default()
    };
    assert!(matches!(
        exec_argv(&outside),
        Err(Error::InvalidPath { .. })
    ));
}

#[test]
fn listings_are_parsed_sorted_and_prefixed() {
    let output = b"f 12 b.txt\0d 4096 a\0f 3 a/x y.py\0l 7 link\0";
    assert_eq!(
        parse_listing("src", output, false),
        Listing {
            entries: vec![
                DirEntry {
                    path: "src/a".into(),
                    is_dir: true,
                    size: 0
                },
                DirEntry {
                    path: "src/a/x y.py".into(),
                    is_dir: false,
                    size: 3
                },
                DirEntry {
                    path: "src/b.txt".into(),
                    is_dir: false,
                    size: 12
                },
                DirEntry {
                    path: "src/link".into(),
                    is_dir: false,
                    size: 7
                },
            ],
            truncated: false,
        }
    );
    // Cut-off output: the last (partial) record is dropped and the listing says so.
    let listing = parse_listing("", b"f 1 a\0f 2 bb", true);
    assert_eq!(
        listing,
        Listing {
            entries: vec![DirEntry {
                path: "a".into(),
                is_dir: false,
                size: 1
            }],
            truncated: true,
        }
    );
}

#[test]
fn the_output_cap_is_shared_and_remembers_a_cut() {
    let cap = OutputCap::new(10);
    assert_eq!(cap.take(4), 4);
    assert!(!cap.truncated());
    assert_eq!(cap.take(8), 6);
    assert!(cap.truncated());
    assert_eq!(cap.take(1), 0);
}
