//! Version ordering per ecosystem: SemVer for npm and Go, PEP 440 for PyPI, Maven's
//! `ComparableVersion` rules for Maven.

use std::cmp::Ordering;

use crate::Ecosystem;

/// Compares two versions of `ecosystem`; `None` when either is not a version of it.
pub fn compare(ecosystem: Ecosystem, a: &str, b: &str) -> Option<Ordering> {
    match ecosystem {
        Ecosystem::Npm | Ecosystem::Go => {
            // Build metadata (`+incompatible`) does not take part in precedence.
            let key = |v: semver::Version| (v.major, v.minor, v.patch, v.pre);
            Some(key(semver(a)?).cmp(&key(semver(b)?)))
        }
        Ecosystem::PyPi => Some(Pep440::parse(a)?.cmp(&Pep440::parse(b)?)),
        Ecosystem::Maven => Some(maven_cmp(a, b)),
    }
}

/// A SemVer version, lenient as manifests are: a leading `v` or `=`, missing minor or patch
/// parts (`1.2` is `1.2.0`).
fn semver(text: &str) -> Option<semver::Version> {
    let text = text.trim().trim_start_matches('=').trim_start_matches('v');
    if let Ok(version) = semver::Version::parse(text) {
        return Some(version);
    }
    let (core, rest) = match text.find(['-', '+']) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let mut parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    while parts.len() < 3 {
        parts.push("0");
    }
    semver::Version::parse(&format!("{}{rest}", parts.join("."))).ok()
}

/// A PEP 440 version: epoch, release, pre-release, post-release, dev-release (the local
/// part is ignored, as it is for ordering against public versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pep440 {
    epoch: u64,
    release: Vec<u64>,
    /// (0 = a, 1 = b, 2 = rc, number)
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
}

impl Pep440 {
    /// Parses a version in PEP 440's normal or accepted alternative spellings.
    pub fn parse(text: &str) -> Option<Self> {
        let lower = text.trim().to_ascii_lowercase();
        let mut s = lower.strip_prefix('v').unwrap_or(&lower);
        if let Some(at) = s.find('+') {
            s = &s[..at];
        }
        let (epoch, rest) = match s.split_once('!') {
            Some((epoch, rest)) => (epoch.parse().ok()?, rest),
            None => (0, s),
        };
        let bytes = rest.as_bytes();
        let mut at = 0;
        let mut release = Vec::new();
        loop {
            let start = at;
            while at < bytes.len() && bytes[at].is_ascii_digit() {
                at += 1;
            }
            if start == at {
                return None;
            }
            release.push(rest[start..at].parse().ok()?);
            if at + 1 < bytes.len() && bytes[at] == b'.' && bytes[at + 1].is_ascii_digit() {
                at += 1;
            } else {
                break;
            }
        }
        let mut version = Self {
            epoch,
            release,
            pre: None,
            post: None,
            dev: None,
        };
        let mut tail = &rest[at..];
        let take_number = |tail: &mut &str| -> u64 {
            let t = tail.trim_start_matches(['.', '-', '_']);
            let digits = t.bytes().take_while(u8::is_ascii_digit).count();
            let number = t[..digits].parse().unwrap_or(0);
            *tail = &t[digits..];
            number
        };
        let sep = |tail: &str| tail.trim_start_matches(['.', '-', '_']).to_owned();
        let pre_words: [(&str, u8); 8] = [
            ("alpha", 0),
            ("beta", 1),
            ("preview", 2),
            ("pre", 2),
            ("rc", 2),
            ("a", 0),
            ("b", 1),
            ("c", 2),
        ];
        let t = sep(tail);
        if let Some((word, kind)) = pre_words.iter().find(|(word, _)| t.starts_with(word)) {
            let mut rest_tail = &t[word.len()..];
            version.pre = Some((*kind, take_number(&mut rest_tail)));
            tail = &tail[tail.len() - rest_tail.len()..];
        }
        let t = sep(tail);
        if let Some(word) = ["post", "rev", "r"]
            .iter()
            .find(|word| t.starts_with(**word))
        {
            let mut rest_tail = &t[word.len()..];
            version.post = Some(take_number(&mut rest_tail));
            tail = &tail[tail.len() - rest_tail.len()..];
        } else if tail.starts_with('-') && tail[1..].starts_with(|c: char| c.is_ascii_digit()) {
            let mut rest_tail = &tail[1..];
            version.post = Some(take_number(&mut rest_tail));
            tail = &tail[tail.len() - rest_tail.len()..];
        }
        let t = sep(tail);
        if let Some(rest_dev) = t.strip_prefix("dev") {
            let mut rest_tail = rest_dev;
            version.dev = Some(take_number(&mut rest_tail));
            tail = &tail[tail.len() - rest_tail.len()..];
        }
        tail.is_empty().then_some(version)
    }

    /// The release segments (`1.4` of `1.4.2rc1` is `[1, 4, 2]`).
    pub fn release(&self) -> &[u64] {
        &self.release
    }
}

impl Ord for Pep440 {
    fn cmp(&self, other: &Self) -> Ordering {
        let release = |v: &Self| {
            let mut r = v.release.clone();
            while r.len() > 1 && r.last() == Some(&0) {
                r.pop();
            }
            r
        };
        // A dev release of a final version sorts before its pre-releases (1.0.dev1 < 1.0a1).
        let pre_key = |v: &Self| match (v.pre, v.post, v.dev) {
            (None, None, Some(_)) => (0u8, 0u8, 0u64),
            (Some((kind, n)), _, _) => (1, kind, n),
            (None, _, _) => (2, 0, 0),
        };
        let post_key = |v: &Self| v.post.map_or((0u8, 0u64), |n| (1, n));
        let dev_key = |v: &Self| v.dev.map_or((1u8, 0u64), |n| (0, n));
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| release(self).cmp(&release(other)))
            .then_with(|| pre_key(self).cmp(&pre_key(other)))
            .then_with(|| post_key(self).cmp(&post_key(other)))
            .then_with(|| dev_key(self).cmp(&dev_key(other)))
    }
}

impl PartialOrd for Pep440 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One item of a Maven version: a number or a qualifier.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MavenItem {
    Number(u64),
    Qualifier(String),
}

/// Maven's qualifier order: alpha < beta < milestone < rc < snapshot < release < sp, other
/// qualifiers after them in text order.
fn qualifier_rank(qualifier: &str) -> (u8, String) {
    match qualifier {
        "alpha" | "a" => (0, String::new()),
        "beta" | "b" => (1, String::new()),
        "milestone" | "m" => (2, String::new()),
        "rc" | "cr" => (3, String::new()),
        "snapshot" => (4, String::new()),
        "" | "ga" | "final" | "release" => (5, String::new()),
        "sp" => (6, String::new()),
        other => (7, other.to_owned()),
    }
}

fn maven_items(text: &str) -> Vec<MavenItem> {
    let lower = text.trim().to_ascii_lowercase();
    let mut items = Vec::new();
    let mut token = String::new();
    let flush = |token: &mut String, items: &mut Vec<MavenItem>| {
        if token.is_empty() {
            return;
        }
        match token.parse::<u64>() {
            Ok(n) => items.push(MavenItem::Number(n)),
            Err(_) => items.push(MavenItem::Qualifier(std::mem::take(token))),
        }
        token.clear();
    };
    for c in lower.chars() {
        if c == '.' || c == '-' || c == '_' {
            flush(&mut token, &mut items);
        } else {
            // A switch between digits and letters separates items too (1.0alpha1).
            if let Some(last) = token.chars().last()
                && last.is_ascii_digit() != c.is_ascii_digit()
            {
                flush(&mut token, &mut items);
            }
            token.push(c);
        }
    }
    flush(&mut token, &mut items);
    // Trailing zeros and release qualifiers do not count (1.0.0 = 1 = 1-final).
    while let Some(last) = items.last() {
        let empty = match last {
            MavenItem::Number(n) => *n == 0,
            MavenItem::Qualifier(q) => qualifier_rank(q).0 == 5,
        };
        if empty && items.len() > 1 {
            items.pop();
        } else {
            break;
        }
    }
    items
}

fn maven_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (maven_items(a), maven_items(b));
    for index in 0..a.len().max(b.len()) {
        let ordering = match (a.get(index), b.get(index)) {
            (Some(x), Some(y)) => maven_item_cmp(x, y),
            (Some(x), None) => maven_item_cmp(x, &MavenItem::Qualifier(String::new())),
            (None, Some(y)) => maven_item_cmp(&MavenItem::Qualifier(String::new()), y),
            (None, None) => Ordering::Equal,
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

fn maven_item_cmp(a: &MavenItem, b: &MavenItem) -> Ordering {
    use MavenItem::{Number, Qualifier};
    match (a, b) {
        (Number(x), Number(y)) => x.cmp(y),
        // A missing item against a number: 1 = 1.0, 1 < 1.1.
        (Qualifier(q), Number(n)) if q.is_empty() => 0.cmp(n),
        (Number(n), Qualifier(q)) if q.is_empty() => n.cmp(&0),
        // A number is newer than any qualifier (1-sp < 1.1).
        (Number(_), Qualifier(_)) => Ordering::Greater,
        (Qualifier(_), Number(_)) => Ordering::Less,
        (Qualifier(x), Qualifier(y)) => qualifier_rank(x).cmp(&qualifier_rank(y)),
    }
}

#[cfg(test)]
#[path = "version_tests.rs"]
mod tests;
