#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn roles_are_ordered_and_parse_case_insensitively() {
    assert!(Role::Admin.allows(Role::Developer));
    assert!(Role::Developer.allows(Role::Viewer));
    assert!(!Role::Viewer.allows(Role::Developer));
    assert!(!Role::Developer.allows(Role::Admin));
    assert_eq!("Admin".parse::<Role>().unwrap(), Role::Admin);
    let error = "owner".parse::<Role>().unwrap_err().to_string();
    assert!(error.contains("unknown role \"owner\""), "{error}");
}

#[test]
fn user_names_are_checked() {
    for good in ["alice", "ci-bot", "a.b_c", "x1"] {
        check_user_name(good).unwrap();
    }
    for bad in [
        "",
        "-lead",
        "with space",
        "tab\tname",
        "ünïcode",
        &"a".repeat(65),
    ] {
        assert!(check_user_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn lifetimes_parse_with_units_and_refuse_the_rest() {
    assert_eq!(parse_lifetime("30d").unwrap(), time::Duration::days(30));
    assert_eq!(parse_lifetime("12h").unwrap(), time::Duration::hours(12));
    assert_eq!(parse_lifetime("45m").unwrap(), time::Duration::minutes(45));
    for bad in ["", "d", "30", "30w", "0d", "-1d", "99999d"] {
        let error = parse_lifetime(bad).unwrap_err().to_string();
        assert!(error.contains("invalid lifetime"), "{bad}: {error}");
    }
}
