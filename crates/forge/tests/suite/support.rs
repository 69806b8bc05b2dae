//! Fixtures: a forge on a temporary root and store, sample trees, and a plain git for checks.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use cap_forge::{Forge, ForgeConfig};
use tempfile::TempDir;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL the tests use (trust auth on loopback).
pub fn postgres_url() -> String {
    std::env::var("CAP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub struct Fixture {
    pub dir: TempDir,
    pub forge: Forge,
}

pub async fn forge(db: Db) -> anyhow::Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let database_url = match db {
        Db::Sqlite => cap_storage::sqlite_url(&dir.path().join("github.db")),
        Db::Postgres => postgres_url(),
    };
    let forge = Forge::open(ForgeConfig {
        root: dir.path().join("forge"),
        database_url,
        public_url: "http://127.0.0.1:8080/".to_owned(),
    })
    .await?;
    Ok(Fixture { dir, forge })
}

/// A repository id no other run uses (PostgreSQL is shared between runs).
pub fn unique_repo() -> String {
    format!("t{}/demo", uuid::Uuid::new_v4().simple())
}

/// A small project tree, with an executable, a binary file and a `.git` that import skips.
pub fn sample_tree(root: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root.join("src"))?;
    std::fs::create_dir_all(root.join("data"))?;
    std::fs::create_dir_all(root.join(".git"))?;
    std::fs::write(root.join("README.md"), "hello\nold line\n")?;
    std::fs::write(root.join("src/lib.rs"), "pub fn one() -> u32 {\n    1\n}\n")?;
    std::fs::write(root.join("run.sh"), "#!/bin/sh\necho run\n")?;
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(root.join("data/blob.bin"), [0u8, 159, 146, 150, 13, 10])?;
    std::fs::write(root.join(".git/config"), "[core]\n")?;
    Ok(())
}

/// Imports [`sample_tree`] as a new repository and returns its id.
pub async fn sample_repo(fixture: &Fixture) -> anyhow::Result<String> {
    let tree = fixture
        .dir
        .path()
        .join(format!("tree-{}", uuid::Uuid::new_v4().simple()));
    sample_tree(&tree)?;
    let id = unique_repo();
    fixture.forge.import_directory(&id, &tree, "main").await?;
    Ok(id)
}

/// Runs git for a check, with the user's configuration left out, and returns stdout.
pub fn git(git_dir: &str, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let output = Command::new("git")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .arg("--git-dir")
        .arg(git_dir)
        .args(args)
        .output()
        .with_context(|| format!("git {args:?}"))?;
    if !output.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(output.stdout)
}

/// [`git`] as trimmed text.
pub fn git_text(git_dir: &str, args: &[&str]) -> anyhow::Result<String> {
    Ok(String::from_utf8(git(git_dir, args)?)?
        .trim_end()
        .to_owned())
}

/// Declares `<name>::sqlite` and `<name>::postgres` tests running `async fn <name>(Db)`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                super::$name(super::Db::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                super::$name(super::Db::Postgres).await
            }
        }
    )*};
}
pub(crate) use on_both_stores;
