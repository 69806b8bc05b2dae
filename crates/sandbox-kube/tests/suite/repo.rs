//! A real bare repository to make sessions from.

use std::path::Path;

use cap_testkit::git::BareRepo;

/// A bare repository under `dir` with one file of `size` bytes (`data.bin`, not compressible);
/// returns its path and the commit's sha.
pub fn project_with_large_file(dir: &Path, size: usize) -> (String, String) {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    // A xorshift sequence: git cannot compress it away, the test needs no randomness.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    std::fs::write(work.join("data.bin"), data).unwrap();
    let repo = BareRepo::of_tree(dir, &work);
    (repo.url(), repo.commit)
}

/// A bare repository under `dir` with a Python project (`pyproject.toml`, `src/app.py`);
/// returns its path and the commit's sha.
pub fn python_project(dir: &Path) -> (String, String) {
    let repo = BareRepo::new(
        dir,
        &[
            ("pyproject.toml", "[project]\nname = \"demo\"\n"),
            ("src/app.py", "print('hello')\n"),
        ],
    );
    (repo.url(), repo.commit)
}
