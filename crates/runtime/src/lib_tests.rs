#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn with_actor(value: &str) -> tonic::metadata::MetadataMap {
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert(cap_proto::ACTOR_METADATA, value.parse().unwrap());
    metadata
}

#[test]
fn the_acting_user_comes_from_the_metadata() {
    assert_eq!(acting_user(&with_actor("alice")), "alice");
    assert_eq!(
        acting_user(&with_actor("bob.smith@example-1")),
        "bob.smith@example-1"
    );
}

#[test]
fn a_missing_or_odd_actor_is_anonymous() {
    assert_eq!(
        acting_user(&tonic::metadata::MetadataMap::new()),
        "anonymous"
    );
    assert_eq!(acting_user(&with_actor("")), "anonymous");
    assert_eq!(acting_user(&with_actor("alice bob")), "anonymous");
    assert_eq!(acting_user(&with_actor("alice\tadmin")), "anonymous");
    assert_eq!(acting_user(&with_actor(&"a".repeat(65))), "anonymous");
}
