use super::*;

#[test]
fn a_broken_connection_is_retried_an_answered_error_is_not() {
    // What tonic makes of a stream whose server died: `Unknown`, with the I/O error as cause.
    let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "peer closed connection");
    let broken = tonic::Status::from_error(Box::new(eof));
    assert_eq!(broken.code(), tonic::Code::Unknown);
    assert!(Error::upstream("coding agent", broken).is_retryable());

    // (The h2 error wrapping the I/O one cannot be built outside h2; the chaos tests of
    // `cap-e2e` kill agents mid-stream to make it.)

    // The same code answered by the service itself is its verdict, not a passing failure.
    let answered = tonic::Status::unknown("the model refused the request");
    assert!(!Error::upstream("coding agent", answered).is_retryable());
    let refused = tonic::Status::invalid_argument("objective: must not be empty");
    assert!(!Error::upstream("coding agent", refused).is_retryable());
}
