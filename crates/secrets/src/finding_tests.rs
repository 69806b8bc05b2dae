use super::*;

#[test]
fn fingerprint_is_16_hex_digits_of_sha256() {
    // SHA-256("abc") starts with ba7816bf8f01cfea.
    assert_eq!(fingerprint("abc"), "ba7816bf8f01cfea");
}

#[test]
fn redacted_form_shows_at_most_a_quarter_and_four_chars() {
    assert_eq!(redacted_form("abc"), format!("…{}", fingerprint("abc")));
    assert_eq!(
        redacted_form("abcdefgh"),
        format!("ab…{}", fingerprint("abcdefgh"))
    );
    let long = "0123456789abcdefghijklmnopqrstuvwxyz";
    assert_eq!(redacted_form(long), format!("0123…{}", fingerprint(long)));
}
