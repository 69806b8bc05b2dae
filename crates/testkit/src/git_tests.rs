use super::*;

#[test]
fn a_bare_repository_holds_the_files_at_its_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = BareRepo::new(dir.path(), &[("src/app.py", "x = 1\n"), ("README", "hi\n")]);
    assert_eq!(git(&repo.path, &["rev-parse", "main"]), repo.commit);
    let files = git(&repo.path, &["ls-tree", "-r", "--name-only", "main"]);
    assert_eq!(files.lines().collect::<Vec<_>>(), ["README", "src/app.py"]);
    assert_eq!(git(&repo.path, &["show", "main:src/app.py"]), "x = 1");
}

#[test]
#[should_panic(expected = "not a git repository")]
fn a_failing_git_command_panics_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["rev-parse", "HEAD"]);
}
