#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn pypi_names_are_pep503_normalised() {
    for name in [
        "Friendly-Bard",
        "friendly.bard",
        "FRIENDLY_BARD",
        "friendly--._bard",
    ] {
        assert_eq!(Ecosystem::PyPi.normalise(name), "friendly-bard", "{name}");
    }
    assert_eq!(Ecosystem::Npm.normalise("@Scope/Pkg"), "@Scope/Pkg");
    assert_eq!(Ecosystem::from_name("pypi"), Some(Ecosystem::PyPi));
    assert_eq!(Ecosystem::from_name("crates.io"), None);
}
