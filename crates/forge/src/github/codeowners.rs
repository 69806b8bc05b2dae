//! CODEOWNERS: who owns which paths, and so whom a pull request asks for review.
//!
//! GitHub reads the first of `.github/CODEOWNERS`, `CODEOWNERS` and `docs/CODEOWNERS` on the
//! base branch; patterns follow gitignore's rules (matched here with `ignore`'s gitignore
//! matcher) and the last matching line wins. An owner is `@user`, `@org/team` or an e-mail
//! address (which the REST API cannot request, so it is left out).

use std::collections::BTreeSet;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Where GitHub looks for CODEOWNERS, in its order.
pub const LOCATIONS: [&str; 3] = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

/// A parsed CODEOWNERS file.
#[derive(Debug)]
pub struct CodeOwners {
    /// Where it was found.
    pub path: String,
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    pattern: String,
    matcher: Gitignore,
    owners: Vec<String>,
}

/// Whom to request as reviewers: users by login, teams by slug.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reviewers {
    /// Logins (without `@`).
    pub users: BTreeSet<String>,
    /// Team slugs of the repository's organisation (without `@org/`).
    pub teams: BTreeSet<String>,
}

impl Reviewers {
    /// No one.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.teams.is_empty()
    }
}

impl CodeOwners {
    /// Parses `text` (found at `path`). Lines that do not parse (GitHub shows them as errors
    /// and ignores them) are skipped.
    pub fn parse(path: &str, text: &str) -> Self {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.split_once(" #").map_or(line, |(rule, _)| rule).trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let Some(pattern) = words.next() else {
                continue;
            };
            let mut builder = GitignoreBuilder::new("");
            if builder.add_line(None, pattern).is_err() {
                tracing::warn!(%path, %pattern, "CODEOWNERS pattern not understood; skipped");
                continue;
            }
            let Ok(matcher) = builder.build() else {
                continue;
            };
            rules.push(Rule {
                pattern: pattern.to_owned(),
                matcher,
                owners: words.map(str::to_owned).collect(),
            });
        }
        Self {
            path: path.to_owned(),
            rules,
        }
    }

    /// The owners of `path` (relative, `/`-separated): the last matching line's.
    pub fn owners_of(&self, path: &str) -> &[String] {
        self.rules
            .iter()
            .rev()
            .find(|rule| {
                rule.matcher
                    .matched_path_or_any_parents(path, /*is_dir*/ false)
                    .is_ignore()
            })
            .map_or(&[], |rule| rule.owners.as_slice())
    }

    /// The reviewers to request for a change of `paths`, leaving out `author` (GitHub refuses
    /// to request the author) and bots.
    pub fn reviewers_for<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a str>,
        author: &str,
    ) -> Reviewers {
        let mut reviewers = Reviewers::default();
        for path in paths {
            for owner in self.owners_of(path) {
                let Some(name) = owner.strip_prefix('@') else {
                    // An e-mail address: the REST API requests only logins and teams.
                    continue;
                };
                match name.split_once('/') {
                    Some((_org, team)) => {
                        reviewers.teams.insert(team.to_owned());
                    }
                    None if name.eq_ignore_ascii_case(author) || name.ends_with("[bot]") => {}
                    None => {
                        reviewers.users.insert(name.to_owned());
                    }
                }
            }
        }
        reviewers
    }

    /// The patterns, in file order (for messages and tests).
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|rule| rule.pattern.as_str())
    }
}

#[cfg(test)]
#[path = "codeowners_tests.rs"]
mod tests;
