use pretty_assertions::assert_eq;

use super::*;

fn file(text: &str) -> Entry {
    Entry::File(text.as_bytes().to_vec())
}

#[test]
fn modified_file_diff_has_git_headers() {
    let diff = render(
        "src/a.py",
        Some(&file("one\ntwo\nthree\n")),
        Some(&file("one\n2\nthree\n")),
    );
    assert_eq!(
        diff,
        "diff --git a/src/a.py b/src/a.py\n--- a/src/a.py\n+++ b/src/a.py\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\n"
    );
}

#[test]
fn created_and_deleted_files_use_dev_null() {
    let created = render("new.txt", None, Some(&file("hello\n")));
    assert_eq!(
        created,
        "diff --git a/new.txt b/new.txt\nnew file mode 100644\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+hello\n"
    );
    let deleted = render("old.txt", Some(&file("bye\n")), None);
    assert_eq!(
        deleted,
        "diff --git a/old.txt b/old.txt\ndeleted file mode 100644\n--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"
    );
}

#[test]
fn binary_files_are_noted_not_diffed() {
    let diff = render(
        "img.bin",
        Some(&Entry::File(vec![0, 1, 2])),
        Some(&Entry::File(vec![0, 1, 3])),
    );
    assert_eq!(
        diff,
        "diff --git a/img.bin b/img.bin\nBinary files a/img.bin and b/img.bin differ\n"
    );
    let invalid_utf8 = render("x", None, Some(&Entry::File(vec![0xff, 0xfe])));
    assert!(
        invalid_utf8.ends_with("Binary files /dev/null and b/x differ\n"),
        "{invalid_utf8}"
    );
}

#[test]
fn symlinks_show_their_target() {
    let diff = render("link", None, Some(&Entry::Symlink(b"target".to_vec())));
    assert!(diff.contains("new file mode 120000\n"), "{diff}");
    assert!(diff.contains("+target\n"), "{diff}");
}
