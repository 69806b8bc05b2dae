use super::*;

#[test]
fn creates_ca_once_and_signs_services() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure_dev(dir.path()).unwrap();
    let ca = fs::read_to_string(pki.ca_cert_path()).unwrap();
    let gateway = pki.service("gateway").unwrap();
    assert_eq!(gateway.ca_pem(), ca);
    // A second open keeps the same CA and the same service certificate.
    let again = Pki::ensure_dev(dir.path()).unwrap();
    assert_eq!(fs::read_to_string(again.ca_cert_path()).unwrap(), ca);
    assert_eq!(again.service("gateway").unwrap().cert_pem, gateway.cert_pem);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn refuses_bad_service_names() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure_dev(dir.path()).unwrap();
    assert!(matches!(
        pki.service("../etc"),
        Err(Error::InvalidServiceName(_))
    ));
    assert!(matches!(pki.service(""), Err(Error::InvalidServiceName(_))));
}

#[test]
fn a_service_certificate_names_its_service() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure_dev(dir.path()).unwrap();
    let gateway = pki.service("gateway").unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(gateway.cert_pem.as_bytes()).unwrap();
    assert_eq!(
        certificate_service(&pem.contents).as_deref(),
        Some("gateway")
    );
    // The CA's own name is not a service name.
    let ca = fs::read_to_string(pki.ca_cert_path()).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca.as_bytes()).unwrap();
    assert_eq!(certificate_service(&pem.contents), None);
    assert_eq!(certificate_service(b"not a certificate"), None);
}
