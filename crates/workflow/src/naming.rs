//! Branch names: `coding-assistant/{timestamp}-{feature-slug}`.

/// The feature slug of a prompt: lowercase ASCII words joined by `-`, at most 40 characters,
/// `change` when nothing is left.
pub fn feature_slug(prompt: &str) -> String {
    let mut slug = String::new();
    for word in prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_ascii_lowercase();
        let extra = if slug.is_empty() {
            word.len()
        } else {
            word.len() + 1
        };
        if slug.len() + extra > 40 {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word);
    }
    if slug.is_empty() {
        "change".to_owned()
    } else {
        slug
    }
}

/// The branch for a task: `coding-assistant/{YYYYMMDDHHMMSS}-{slug}`, in UTC.
pub fn branch_name(prompt: &str, at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "coding-assistant/{:04}{:02}{:02}{:02}{:02}{:02}-{}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        feature_slug(prompt)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_and_safe() {
        assert_eq!(
            feature_slug("Fix the add() bug in calc.py!"),
            "fix-the-add-bug-in-calc-py"
        );
        assert_eq!(feature_slug("  ?? "), "change");
        assert_eq!(feature_slug("Überprüfe die Datei"), "berpr-fe-die-datei");
        let long = feature_slug(&"word ".repeat(50));
        assert!(long.len() <= 40, "{long}");
    }

    #[test]
    fn branch_has_timestamp_and_slug() {
        let at = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(
            branch_name("Fix add", at),
            "coding-assistant/20231114221320-fix-add"
        );
    }
}
