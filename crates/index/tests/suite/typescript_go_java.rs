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
            e("src/main/java/com/acme/bank/Main.java", bank),
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

#[test]
fn tsconfig_paths_and_base_url_resolve_aliases() -> anyhow::Result<()> {
    let index = index(&fixture("typescript-aliases"))?;
    assert_eq!(
        edges(&index),
        [
            e(
                "packages/web/src/page.tsx",
                "packages/web/src/widgets/button.tsx"
            ),
            e("src/app.ts", "src/config/index.ts"),
            e("src/app.ts", "src/lib/format.ts"),
            e("src/app.ts", "src/models/user.ts"),
            e("src/lib/format.ts", "src/models/user.ts"),
        ]
    );
    let app = index.dependencies("src/app.ts")?;
    let imports: Vec<&str> = app.uses.iter().map(|e| e.import.as_str()).collect();
    assert_eq!(imports, ["@config", "lib/format", "@models/user"]);
    // A pattern that matches but names no file, and a package: outside the repository.
    assert_eq!(app.external, ["express", "@models/missing"]);
    // The nearest tsconfig decides: the web package's has no `@models`.
    assert_eq!(
        index.dependencies("packages/web/src/page.tsx")?.external,
        ["@models/user"]
    );
    Ok(())
}

#[test]
fn a_tsconfig_outside_the_repository_or_unreadable_is_ignored() -> anyhow::Result<()> {
    let outside = tempfile::tempdir()?;
    std::fs::write(
        outside.path().join("tsconfig.json"),
        r#"{ "compilerOptions": { "baseUrl": "." } }"#,
    )?;
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("lib"))?;
    std::fs::write(dir.path().join("lib/util.ts"), "export const x = 1;\n")?;
    std::fs::write(
        dir.path().join("main.ts"),
        "import { x } from 'lib/util';\n",
    )?;
    std::os::unix::fs::symlink(
        outside.path().join("tsconfig.json"),
        dir.path().join("tsconfig.json"),
    )?;
    assert_eq!(edges(&index(dir.path())?), []);
    // Broken JSON: no aliases, no crash.
    std::fs::remove_file(dir.path().join("tsconfig.json"))?;
    std::fs::write(dir.path().join("tsconfig.json"), "{ \"compilerOptions\": ")?;
    assert_eq!(edges(&index(dir.path())?), []);
    // Read as a regular file, it counts.
    std::fs::write(
        dir.path().join("tsconfig.json"),
        r#"{ "compilerOptions": { "baseUrl": "." } }"#,
    )?;
    assert_eq!(edges(&index(dir.path())?), [e("main.ts", "lib/util.ts")]);
    Ok(())
}

#[test]
fn java_classes_of_the_same_package_need_no_import() -> anyhow::Result<()> {
    let index = index(&fixture("java-bank"))?;
    let main = index.dependencies("src/main/java/com/acme/bank/Main.java")?;
    assert_eq!(
        main.uses,
        [cap_index::Edge {
            from: "src/main/java/com/acme/bank/Main.java".to_owned(),
            to: "src/main/java/com/acme/bank/Bank.java".to_owned(),
            import: "com.acme.bank.Bank".to_owned(),
        }]
    );
    // Bank.java is used by Main.java without an import naming it.
    let bank = index.dependencies("src/main/java/com/acme/bank/Bank.java")?;
    let users: Vec<&str> = bank.used_by.iter().map(|e| e.from.as_str()).collect();
    assert_eq!(users, ["src/main/java/com/acme/bank/Main.java"]);
    Ok(())
}

#[test]
fn go_imports_resolve_to_the_files_defining_what_is_used() -> anyhow::Result<()> {
    let index = index(&fixture("go-packages"))?;
    assert_eq!(
        edges(&index),
        [
            // `store.New`, `store.Store`: store.go alone, not cache.go.
            e("cmd/app/main.go", "store/store.go"),
            // Renamed import, `cache.NewCache`: cache.go alone.
            e("cmd/report/main.go", "store/cache.go"),
            // Only a constant: every file of the package, never the `package main` generator.
            e("cmd/version/main.go", "store/cache.go"),
            e("cmd/version/main.go", "store/store.go"),
        ]
    );
    let summary = index.file_summary("cmd/app/main.go")?;
    assert_eq!(
        summary.references,
        ["fmt.Println", "s.Put", "store.New", "store.Store"]
    );
    Ok(())
}

#[test]
fn an_edited_tsconfig_resolves_the_imports_again() -> anyhow::Result<()> {
    let repo = super::copy_fixture("typescript-aliases")?;
    let mut index = index(repo.path())?;
    assert!(edges(&index).contains(&e("src/app.ts", "src/config/index.ts")));
    // Same paths, same sources; only the alias moves.
    std::fs::write(
        repo.path().join("tsconfig.base.json"),
        r#"{ "compilerOptions": { "baseUrl": "./src", "paths": { "@models/*": ["models/*"] } } }
"#,
    )?;
    index.refresh()?;
    assert!(!edges(&index).contains(&e("src/app.ts", "src/config/index.ts")));
    assert!(edges(&index).contains(&e("src/app.ts", "src/models/user.ts")));
    // Told which file changed, without a walk: the same.
    std::fs::write(
        repo.path().join("packages/web/tsconfig.json"),
        r#"{ "compilerOptions": { "paths": { "@web/*": ["./src/*"] } } }"#,
    )?;
    index.update_paths(&["packages/web/tsconfig.json"])?;
    assert!(!edges(&index).contains(&e(
        "packages/web/src/page.tsx",
        "packages/web/src/widgets/button.tsx"
    )));
    Ok(())
}
