//! The Python fixture: summaries, imports, resolved edges in both directions.

use pretty_assertions::assert_eq;

use super::{edges, fixture, index, symbols};

#[test]
fn summaries_hold_classes_methods_functions_and_signatures() -> anyhow::Result<()> {
    let index = index(&fixture("python-shop"))?;
    assert_eq!(
        symbols(&index, "shop/models.py")?,
        [
            "class Item",
            "class Cart",
            "method Cart.__init__",
            "method Cart.add",
            "method Cart.total_cents"
        ]
    );
    let models = index.file_summary("shop/models.py")?;
    let add = models
        .symbols
        .iter()
        .find(|s| s.name == "add")
        .ok_or(anyhow::anyhow!("no add"))?;
    assert_eq!(
        add.signature,
        "def add(self, item: Item, quantity: int = 1) -> None"
    );
    assert_eq!((add.start_line, add.end_line), (15, 17));
    let cli = index.file_summary("shop/cli.py")?;
    let imports: Vec<(&str, Vec<&str>)> = cli
        .imports
        .iter()
        .map(|i| {
            (
                i.module.as_str(),
                i.names.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        imports,
        [
            ("sys", vec![]),
            ("shop", vec!["pricing"]),
            ("shop.models", vec!["Cart", "Item"])
        ]
    );
    Ok(())
}

#[test]
fn imports_resolve_to_files_in_both_directions() -> anyhow::Result<()> {
    let index = index(&fixture("python-shop"))?;
    let e = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        edges(&index),
        [
            e("shop/cli.py", "shop/models.py"),
            e("shop/cli.py", "shop/pricing.py"),
            e("shop/pricing.py", "shop/models.py"),
            e("tests/test_pricing.py", "shop/models.py"),
            e("tests/test_pricing.py", "shop/pricing.py"),
        ]
    );
    let deps = index.dependencies("shop/models.py")?;
    let users: Vec<&str> = deps.used_by.iter().map(|e| e.from.as_str()).collect();
    assert_eq!(
        users,
        ["shop/cli.py", "shop/pricing.py", "tests/test_pricing.py"]
    );
    assert!(deps.uses.is_empty());
    assert_eq!(deps.external, ["dataclasses"]);
    let deps = index.dependencies("./shop/pricing.py")?;
    assert_eq!(
        deps.uses
            .iter()
            .map(|e| e.import.as_str())
            .collect::<Vec<_>>(),
        [".models"]
    );
    assert_eq!(
        index.dependencies("tests/test_pricing.py")?.external,
        ["pytest"]
    );
    Ok(())
}

#[test]
fn bad_paths_are_refused_by_category() -> anyhow::Result<()> {
    let index = index(&fixture("python-shop"))?;
    for bad in ["../etc/passwd", "/etc/passwd", "", "shop/../../x.py"] {
        let err = index.file_summary(bad).err().map(|e| e.to_string());
        assert_eq!(
            err,
            Some(format!("path {bad:?} is outside the repository")),
            "{bad}"
        );
    }
    let err = index
        .dependencies("shop/nothing.py")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("shop/nothing.py is not an indexed file")
    );
    Ok(())
}
