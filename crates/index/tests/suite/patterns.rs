//! `detect_patterns(directory)` and the repository map.

use pretty_assertions::assert_eq;

use cap_index::detect_patterns;

use super::{fixture, index};

fn names(root: &str) -> anyhow::Result<Vec<(String, String, Vec<String>)>> {
    let root = fixture(root);
    let index = index(&root)?;
    Ok(detect_patterns(&root, Some(&index))
        .into_iter()
        .map(|p| (p.category, p.name, p.evidence))
        .collect())
}

fn p(c: &str, n: &str, e: &[&str]) -> (String, String, Vec<String>) {
    (
        c.to_owned(),
        n.to_owned(),
        e.iter().map(|s| (*s).to_owned()).collect(),
    )
}

#[test]
fn python_conventions() -> anyhow::Result<()> {
    assert_eq!(
        names("python-shop")?,
        [
            p("linter", "ruff", &["pyproject.toml"]),
            p(
                "naming",
                "PascalCase types (python)",
                &["shop/broken.py", "shop/models.py"]
            ),
            p(
                "naming",
                "snake_case functions (python)",
                &["shop/models.py", "shop/pricing.py", "tests/test_pricing.py"]
            ),
            p(
                "test_framework",
                "pytest",
                &["pyproject.toml", "tests/test_pricing.py"]
            ),
        ]
    );
    Ok(())
}

#[test]
fn typescript_javascript_go_java_conventions() -> anyhow::Result<()> {
    let ts = names("typescript-api")?;
    assert!(
        ts.contains(&p(
            "architecture",
            "repository/service layers",
            &["src/repositories/", "src/services/"]
        )),
        "{ts:?}"
    );
    assert!(ts.contains(&p("build_tool", "tsc", &["tsconfig.json"])));
    assert!(ts.contains(&p("test_framework", "vitest", &["package.json"])));
    let js = names("javascript-cli")?;
    for (c, n) in [
        ("test_framework", "jest"),
        ("linter", "eslint"),
        ("formatter", "prettier"),
        ("package_manager", "npm"),
    ] {
        assert!(
            js.iter().any(|(c2, n2, _)| c2 == c && n2 == n),
            "{c} {n} in {js:?}"
        );
    }
    let go = names("go-store")?;
    assert!(
        go.contains(&p("test_framework", "go test", &["store/store_test.go"])),
        "{go:?}"
    );
    assert!(go.contains(&p("build_tool", "go", &["go.mod"])));
    let java = names("java-bank")?;
    assert!(java.contains(&p("build_tool", "maven", &["pom.xml"])));
    assert!(
        java.contains(&p(
            "test_framework",
            "junit",
            &["pom.xml", "src/test/java/com/acme/bank/BankTest.java"]
        )),
        "{java:?}"
    );
    assert!(
        java.iter()
            .any(|(c, n, _)| c == "naming" && n == "PascalCase types (java)"),
        "{java:?}"
    );
    assert!(
        !java
            .iter()
            .any(|(_, n, _)| n == "PascalCase functions (java)"),
        "constructors are not evidence: {java:?}"
    );
    Ok(())
}

#[test]
fn repo_map_ranks_imported_files_first_within_budget() -> anyhow::Result<()> {
    let index = index(&fixture("python-shop"))?;
    let map = cap_index::repo_map(&index, 1000);
    assert!(
        map.starts_with(
            "shop/models.py:\n  class Item\n  class Cart\n    def __init__(self) -> None\n"
        ),
        "{map}"
    );
    let small = cap_index::repo_map(&index, 20);
    assert!(small.len() <= 80, "{small}");
    assert!(small.starts_with("shop/models.py"), "{small}");
    Ok(())
}
