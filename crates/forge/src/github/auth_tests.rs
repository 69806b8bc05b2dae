use super::*;

#[test]
fn bad_keys_are_refused_without_quoting_them() {
    let error = AppKey::from_pem("not a key").unwrap_err();
    assert!(error.contains("not a PEM file"), "{error}");
    let error = AppKey::from_pem(
        "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LW1hdGVyaWFs\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap_err();
    assert!(error.contains("not a usable RSA private key"), "{error}");
    assert!(!error.contains("c2VjcmV0"));
    let error = AppKey::from_pem("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----")
        .unwrap_err();
    assert!(error.contains("not an RSA private key"), "{error}");
}

#[test]
fn tokens_are_fresh_until_the_renewal_margin() {
    let now = SystemTime::now();
    let mut cache = TokenCache::default();
    cache.insert(
        7,
        InstallationToken {
            token: "t".into(),
            expires_at: now + Duration::from_secs(600),
        },
    );
    assert!(cache.fresh(7, now, Duration::from_secs(300)).is_some());
    assert!(cache.fresh(7, now, Duration::from_secs(600)).is_none());
    assert!(cache.fresh(8, now, Duration::ZERO).is_none());
    assert!(!format!("{cache:?}").contains("\"t\""));
}

#[test]
fn timestamps_are_read_as_rfc3339() {
    assert_eq!(
        timestamp_ms(Some("2016-07-11T22:14:10Z")),
        1_468_275_250_000
    );
    assert_eq!(timestamp_ms(Some("yesterday")), 0);
    assert_eq!(timestamp_ms(None), 0);
}
