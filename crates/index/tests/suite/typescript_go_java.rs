//! The TypeScript, JavaScript, Go and Java fixtures: summaries and resolved edges.

use pretty_assertions::assert_eq;

use super::{edges, fixture, index, symbols};

fn e(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

#[test]
fn typescript_symbols_and_edges() -> anyhow::Result<()> {
    let index = index(&fixture("typescript-api"))?;
    assert_eq!(
        symbols(&index, "src/types.ts")?,
        ["interface User", "type UserId", "enum Role"]
    );
    assert_eq!(
        symbols(&index, "src/services/userService.ts")?,
        [
            "class UserService",
            "method UserService.constructor",
            "method UserService.rename",
            "function createService"
        ]
    );
    let service = index.file_summary("src/services/userService.ts")?;
    let rename = service
        .symbols
        .iter()
        .find(|s| s.name == "rename")
        .ok_or(anyhow::anyhow!("no rename"))?;
    assert_eq!(rename.signature, "rename(id: number, name: string): User");
    assert_eq!(
        edges(&index),
        [
            e("src/index.ts", "src/services/userService.ts"),
            e("src/index.ts", "src/types.ts"),
            e("src/repositories/userRepository.ts", "src/types.ts"),
            e(
                "src/services/userService.ts",
                "src/repositories/userRepository.ts"
            ),
            e("src/services/userService.ts", "src/types.ts"),
        ]
    );
    let deps = index.dependencies("src/services/userService.ts")?;
    assert_eq!(deps.external, ["express"]);
    let types = index.dependencies("src/types.ts")?;
    let users: Vec<&str> = types.used_by.iter().map(|e| e.from.as_str()).collect();
    assert_eq!(
        users,
        [
            "src/index.ts",
            "src/repositories/userRepository.ts",
            "src/services/userService.ts"
        ]
    );
    Ok(())
}

#[test]
fn javascript_require_and_arrow_functions() -> anyhow::Result<()> {
    let index = index(&fixture("javascript-cli"))?;
    assert_eq!(
        symbols(&index, "src/lib/stats.js")?,
        [
            "function mean",
            "function median",
            "class Summary",
            "method Summary.constructor",
            "method Summary.describe"
        ]
    );
    let stats = index.file_summary("src/lib/stats.js")?;
    assert_eq!(stats.symbols[1].signature, "const median = (values)");
    assert_eq!(edges(&index), [e("src/index.js", "src/lib/stats.js")]);
    assert_eq!(index.dependencies("src/index.js")?.external, ["path"]);
    Ok(())
}

#[test]
fn go_packages_methods_and_module_imports() -> anyhow::Result<()> {
    let index = index(&fixture("go-store"))?;
    assert_eq!(
        symbols(&index, "store/store.go")?,
        [
            "type Store",
            "interface Reader",
            "function New",
            "method Store.Get",
            "method Store.Describe"
        ]
    );
    let store = index.file_summary("store/store.go")?;
    assert_eq!(store.package.as_deref(), Some("store"));
    let get = &store.symbols[3];
    assert_eq!(get.signature, "func (s *Store) Get(i int) string");
    assert_eq!(edges(&index), [e("cmd/app/main.go", "store/store.go")]);
    let deps = index.dependencies("cmd/app/main.go")?;
    assert_eq!(deps.external, ["fmt", "os"]);
    assert_eq!(deps.uses[0].import, "example.com/store/store");
    Ok(())
}

#[test]
fn java_classes_packages_and_imports() -> anyhow::Result<()> {
    let index = index(&fixture("java-bank"))?;
    let bank = "src/main/java/com/acme/bank/Bank.java";
    assert_eq!(
        symbols(&index, bank)?,
        [
            "class Bank",
            "method Bank.open",
            "method Bank.transfer",
            "interface Bank.Auditor",
            "method Auditor.record"
        ]
    );
    let summary = index.file_summary(bank)?;
    assert_eq!(summary.package.as_deref(), Some("com.acme.bank"));
    assert_eq!(
        summary.symbols[2].signature,
        "public void transfer(String from, String to, long amount)"
    );
    let account = "src/main/java/com/acme/bank/model/Account.java";
    assert_eq!(
        edges(&index),
        [
            e(bank, account),
            e("src/test/java/com/acme/bank/BankTest.java", account)
        ]
    );
    let deps = index.dependencies(bank)?;
    assert_eq!(deps.external, ["java.util.HashMap", "java.util.Map"]);
    let test = index.dependencies("src/test/java/com/acme/bank/BankTest.java")?;
    assert_eq!(
        test.external,
        [
            "org.junit.jupiter.api.Assertions.assertThrows",
            "org.junit.jupiter.api.Test"
        ]
    );
    Ok(())
}

#[test]
fn go_modules_nested_in_the_tree_resolve() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    super::copy_dir(&fixture("go-store"), &dir.path().join("services/store"))?;
    let index = index(dir.path())?;
    assert_eq!(
        edges(&index),
        [e(
            "services/store/cmd/app/main.go",
            "services/store/store/store.go"
        )]
    );
    Ok(())
}
