#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn args(data: &Path, command: AdvisoriesCommand) -> AdvisoriesArgs {
    AdvisoriesArgs {
        command,
        data_dir: data.to_owned(),
    }
}

#[test]
fn import_then_check_a_tree_and_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let osv = dir.path().join("osv");
    std::fs::create_dir(&osv).unwrap();
    let record = serde_json::json!({
        "id": "TEST-2026-0001",
        "modified": "2026-01-01T00:00:00Z",
        "affected": [{
            "package": {"ecosystem": "Go", "name": "golang.org/x/text"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.3.8"}]}]
        }]
    });
    std::fs::write(osv.join("a.json"), record.to_string()).unwrap();
    let data = dir.path().join("data");
    let import = args(&data, AdvisoriesCommand::Import { path: osv });
    assert_eq!(run(&import).unwrap(), ExitCode::SUCCESS);

    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(
        tree.join("go.mod"),
        "module x\n\nrequire golang.org/x/text v0.3.7\n",
    )
    .unwrap();
    let check = |path: PathBuf| {
        args(
            &data,
            AdvisoriesCommand::Check {
                path,
                root: Some(tree.clone()),
                repository: String::new(),
                json: false,
            },
        )
    };
    assert_eq!(
        run(&check(tree.clone())).unwrap(),
        ExitCode::from(EXIT_FOUND)
    );

    let diff = dir.path().join("change.diff");
    std::fs::write(
        &diff,
        "--- a/go.mod\n+++ b/go.mod\n@@ -1,3 +1,3 @@\n module x\n \n-require golang.org/x/text v0.3.7\n+require golang.org/x/text v0.3.8\n",
    )
    .unwrap();
    std::fs::write(
        tree.join("go.mod"),
        "module x\n\nrequire golang.org/x/text v0.3.8\n",
    )
    .unwrap();
    assert_eq!(run(&check(diff)).unwrap(), ExitCode::SUCCESS);
    let findings = super::check(&check(tree.clone()), &tree, None, "").unwrap();
    assert_eq!(findings.checked, 1);
}

#[test]
fn bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let import = args(
        dir.path(),
        AdvisoriesCommand::Import {
            path: dir.path().join("missing.zip"),
        },
    );
    assert_eq!(advisories(&import), ExitCode::from(EXIT_ERROR));
}
