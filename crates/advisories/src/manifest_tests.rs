#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

use pretty_assertions::assert_eq;

fn file(path: &str, before: Option<&str>, after: Option<&str>) -> ManifestFile {
    ManifestFile {
        path: path.into(),
        before: before.map(str::to_owned),
        after: after.map(str::to_owned),
    }
}

/// (name, spec, line) of each changed dependency.
fn changed(path: &str, before: Option<&str>, after: Option<&str>) -> Vec<(String, String, usize)> {
    changed_dependencies(&[file(path, before, after)])
        .unwrap()
        .into_iter()
        .map(|dep| (dep.name, dep.spec, dep.line))
        .collect()
}

fn row(name: &str, spec: &str, line: usize) -> (String, String, usize) {
    (name.into(), spec.into(), line)
}

#[test]
fn package_json_added_and_changed_not_removed_or_unchanged() {
    let before = r#"{
  "name": "app",
  "dependencies": {
    "left-pad": "1.0.0",
    "lodash": "^4.17.0",
    "gone": "1.0.0"
  }
}"#;
    let after = r#"{
  "name": "app",
  "dependencies": {
    "left-pad": "1.0.0",
    "lodash": "^4.17.21"
  },
  "devDependencies": {
    "jest": "~29.0.0"
  },
  "peerDependencies": { "react": ">=18" },
  "optionalDependencies": { "fsevents": "2.3.2" }
}"#;
    assert_eq!(
        changed("web/package.json", Some(before), Some(after)),
        vec![
            row("lodash", "^4.17.21", 5),
            row("jest", "~29.0.0", 8),
            row("fsevents", "2.3.2", 11),
            row("react", ">=18", 10),
        ]
    );
    assert_eq!(changed("package.json", Some(after), Some(after)), vec![]);
    assert_eq!(changed("package.json", Some(after), None), vec![]);
    let error = changed_dependencies(&[file("package.json", None, Some("{ nope"))]).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("package.json: not valid JSON"),
        "{error}"
    );
    // Vendored packages' manifests are not the repository's.
    assert_eq!(
        changed("node_modules/x/package.json", None, Some(after)),
        vec![]
    );
}

#[test]
fn requirements_lines_with_normalised_names() {
    let before = "requests==2.30.0\nflask>=2.0\n";
    let after = "# web\nrequests==2.31.0\nflask>=2.0\nDjango_Rest.Framework[extra] ~= 3.14 ; python_version > '3.8'\n-r base.txt\n-e git+https://example.invalid/x.git#egg=x\nnumpy\n";
    assert_eq!(
        changed("requirements-dev.txt", Some(before), Some(after)),
        vec![
            row("requests", "==2.31.0", 2),
            row("django-rest-framework", "~=3.14", 4),
            row("numpy", "", 7),
        ]
    );
    assert_eq!(
        changed("requirements.txt", Some(after), Some(after)),
        vec![]
    );
    assert_eq!(changed("notes.txt", None, Some(after)), vec![]);
}

#[test]
fn pyproject_pep621_optional_and_poetry() {
    let before = "[project]\nname = \"x\"\ndependencies = [\"attrs>=22\"]\n";
    let after = r#"[project]
name = "x"
dependencies = [
  "attrs>=22",
  "PyYAML==5.3",
]

[project.optional-dependencies]
test = ["pytest>=7,<8"]

[tool.poetry.dependencies]
python = "^3.10"
Jinja2 = "^2.10"
urllib3 = { version = "1.26.4", optional = true }
"#;
    assert_eq!(
        changed("pyproject.toml", Some(before), Some(after)),
        vec![
            row("pyyaml", "==5.3", 5),
            row("pytest", ">=7,<8", 9),
            row("jinja2", "^2.10", 13),
            row("urllib3", "1.26.4", 14),
        ]
    );
    let error =
        changed_dependencies(&[file("pyproject.toml", None, Some("[project"))]).unwrap_err();
    assert!(error.to_string().contains("not valid TOML"), "{error}");
}

#[test]
fn go_mod_require_lines_and_blocks() {
    let before = "module example.com/app\n\ngo 1.22\n\nrequire golang.org/x/text v0.3.7\n";
    let after = "module example.com/app\n\ngo 1.22\n\nrequire golang.org/x/text v0.3.8\n\nrequire (\n\tgithub.com/gin-gonic/gin v1.6.0\n\tgolang.org/x/net v0.7.0 // indirect\n)\n";
    assert_eq!(
        changed("go.mod", Some(before), Some(after)),
        vec![
            row("golang.org/x/text", "v0.3.8", 5),
            row("github.com/gin-gonic/gin", "v1.6.0", 8),
            row("golang.org/x/net", "v0.7.0", 9),
        ]
    );
}

#[test]
fn pom_dependencies_with_properties() {
    let after = r#"<project xmlns="http://maven.apache.org/POM/4.0.0">
  <version>1.0</version>
  <properties>
    <log4j.version>2.14.1</log4j.version>
  </properties>
  <dependencies>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>${log4j.version}</version>
    </dependency>
    <dependency>
      <groupId>junit</groupId>
      <artifactId>junit</artifactId>
      <version>4.13.2</version>
    </dependency>
  </dependencies>
  <build><plugins><plugin><dependencies><dependency>
    <groupId>tool</groupId><artifactId>t</artifactId><version>1</version>
  </dependency></dependencies></plugin></plugins></build>
</project>"#;
    let before = after.replace("2.14.1", "2.14.0");
    assert_eq!(
        changed("pom.xml", Some(&before), Some(after)),
        vec![row("org.apache.logging.log4j:log4j-core", "2.14.1", 7)]
    );
    assert_eq!(changed("pom.xml", None, Some(after)).len(), 2);
}
