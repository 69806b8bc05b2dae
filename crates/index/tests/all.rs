//! Integration tests of cap-index on the fixture repositories in `tests/fixtures/context`.

mod suite;
