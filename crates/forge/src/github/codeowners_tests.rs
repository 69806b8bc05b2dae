use pretty_assertions::assert_eq;

use super::*;

const FILE: &str = "\
# Default owners
*       @octo/core
*.rs    @rustacean   # Rust files
/docs/  docs@example.com @writer
build/logs/ @ops
crates/forge/** @forger @coding-assistant[bot]
";

#[test]
fn the_last_matching_line_names_the_owners() {
    let owners = CodeOwners::parse(".github/CODEOWNERS", FILE);
    assert_eq!(owners.owners_of("README.md"), ["@octo/core"]);
    assert_eq!(owners.owners_of("src/lib.rs"), ["@rustacean"]);
    assert_eq!(
        owners.owners_of("docs/guide.md"),
        ["docs@example.com", "@writer"]
    );
    // `/docs/` is anchored: a `docs` deeper down is not it.
    assert_eq!(owners.owners_of("src/docs/x.md"), ["@octo/core"]);
    // A slash inside a pattern anchors it at the root (GitHub's own `build/logs/` example).
    assert_eq!(owners.owners_of("build/logs/a/1.txt"), ["@ops"]);
    assert_eq!(owners.owners_of("a/build/logs/1.txt"), ["@octo/core"]);
    assert_eq!(
        owners.owners_of("crates/forge/src/lib.rs"),
        ["@forger", "@coding-assistant[bot]"]
    );
    assert_eq!(
        owners.patterns().collect::<Vec<_>>(),
        ["*", "*.rs", "/docs/", "build/logs/", "crates/forge/**"]
    );
}

#[test]
fn reviewers_are_users_and_teams_without_the_author_bots_or_addresses() {
    let owners = CodeOwners::parse("CODEOWNERS", FILE);
    let reviewers = owners.reviewers_for(
        [
            "README.md",
            "docs/guide.md",
            "crates/forge/src/lib.rs",
            "src/a.rs",
        ],
        "Rustacean",
    );
    assert_eq!(
        reviewers,
        Reviewers {
            users: ["forger", "writer"].map(String::from).into(),
            teams: ["core"].map(String::from).into(),
        }
    );
    assert!(
        CodeOwners::parse("CODEOWNERS", "")
            .reviewers_for(["a"], "x")
            .is_empty()
    );
}
