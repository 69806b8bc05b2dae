#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn with_actor(value: &str) -> tonic::metadata::MetadataMap {
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert(cap_proto::ACTOR_METADATA, value.parse().unwrap());
    metadata
}

#[test]
fn the_acting_user_comes_from_the_metadata() {
    assert_eq!(user_in_metadata(&with_actor("alice")), "alice");
    assert_eq!(
        user_in_metadata(&with_actor("bob.smith@example-1")),
        "bob.smith@example-1"
    );
}

#[test]
fn a_missing_or_odd_actor_is_anonymous() {
    assert_eq!(
        user_in_metadata(&tonic::metadata::MetadataMap::new()),
        "anonymous"
    );
    assert_eq!(user_in_metadata(&with_actor("")), "anonymous");
    assert_eq!(user_in_metadata(&with_actor("alice bob")), "anonymous");
    assert_eq!(user_in_metadata(&with_actor("alice\tadmin")), "anonymous");
    assert_eq!(user_in_metadata(&with_actor(&"a".repeat(65))), "anonymous");
}

#[test]
fn without_a_client_certificate_the_metadata_is_not_believed() {
    let mut request = tonic::Request::new(());
    *request.metadata_mut() = with_actor("alice");
    assert_eq!(acting_user(&request), "anonymous");
}
