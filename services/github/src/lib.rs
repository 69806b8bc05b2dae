//! GitHub service: branches, commits, pull requests and reviews; a local forge by default.
