//! The local git forge: bare repositories on disk, safe host-side git, pull requests and reviews in the SQL store.
