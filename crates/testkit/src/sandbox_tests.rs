use pretty_assertions::assert_eq;

use super::*;

async fn session(sandbox: &MemorySandbox) -> String {
    sandbox.add_repository(
        "/forge/a/b.git",
        "abc",
        &[
            ("app.py", "x = 1\n"),
            ("tests/test_app.py", "def test(): pass\n"),
        ],
    );
    sandbox
        .create_session(pb::CreateSessionRequest {
            image: String::new(),
            repo_url: "/forge/a/b.git".into(),
            commit_sha: "abc".into(),
        })
        .await
        .unwrap()
        .session_id
}

#[tokio::test]
async fn files_listings_search_and_changes_behave_like_the_service() {
    let sandbox = MemorySandbox::new();
    let id = session(&sandbox).await;
    let listing = sandbox
        .list_directory(pb::ListDirectoryRequest {
            session_id: id.clone(),
            path: String::new(),
            recursive: true,
        })
        .await
        .unwrap();
    let paths: Vec<(&str, bool)> = listing
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e.is_dir))
        .collect();
    assert_eq!(
        paths,
        [
            ("app.py", false),
            ("tests", true),
            ("tests/test_app.py", false)
        ]
    );
    sandbox
        .write_files(pb::WriteFilesRequest {
            session_id: id.clone(),
            changes: vec![wire_change("app.py", Some(&b"x = 2\n".to_vec()))],
        })
        .await
        .unwrap();
    let hits = sandbox
        .search_files(pb::SearchFilesRequest {
            session_id: id.clone(),
            pattern: "x = \\d".into(),
            glob: "*.py".into(),
        })
        .await
        .unwrap();
    assert_eq!(hits.matches.len(), 1);
    let changes = sandbox
        .get_changes(pb::GetChangesRequest {
            session_id: id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        changes.changes,
        [wire_change("app.py", Some(&b"x = 2\n".to_vec()))]
    );
    assert!(
        changes.diff.contains("-x = 1\n+x = 2\n"),
        "{}",
        changes.diff
    );
}

#[tokio::test]
async fn bad_requests_get_the_service_codes_and_change_nothing() {
    let sandbox = MemorySandbox::new();
    let id = session(&sandbox).await;
    let read = |path: &str| {
        sandbox.read_file(pb::ReadFileRequest {
            session_id: id.clone(),
            path: path.into(),
        })
    };
    assert_eq!(
        read("../etc/passwd").await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        read(".git/config").await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        read("missing.py").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    assert_eq!(
        read("tests").await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    let half_bad = sandbox
        .write_files(pb::WriteFilesRequest {
            session_id: id.clone(),
            changes: vec![
                wire_change("new.py", Some(&b"y\n".to_vec())),
                wire_change("/abs.py", Some(&b"y\n".to_vec())),
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(half_bad.code(), tonic::Code::InvalidArgument);
    assert!(!sandbox.files(&id).unwrap().contains_key("new.py"));
    let unknown = sandbox
        .create_session(pb::CreateSessionRequest {
            image: String::new(),
            repo_url: "/forge/a/b.git".into(),
            commit_sha: "def".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn exec_is_answered_by_the_handler_and_failures_are_injected() {
    let sandbox = MemorySandbox::new();
    let id = session(&sandbox).await;
    sandbox.on_exec(|request, files| {
        files.insert("out.txt".into(), b"made by a command\n".to_vec());
        ExecReply::exit(3, format!("ran {}", request.command))
    });
    let outputs: Vec<_> = sandbox
        .exec(pb::ExecRequest {
            session_id: id.clone(),
            command: "make".into(),
            cwd: String::new(),
            timeout_seconds: 5,
            env: Default::default(),
        })
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(outputs.len(), 2);
    let Some(pb::exec_output::Output::Exit(exit)) = &outputs[1].as_ref().unwrap().output else {
        panic!("no exit: {outputs:?}");
    };
    assert_eq!(exit.exit_code, 3);
    assert!(sandbox.files(&id).unwrap().contains_key("out.txt"));

    sandbox.fail("DestroySession", Status::unavailable("gone"));
    let request = pb::DestroySessionRequest {
        session_id: id.clone(),
    };
    let error = sandbox.destroy_session(request.clone()).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable);
    sandbox.destroy_session(request.clone()).await.unwrap();
    assert!(sandbox.sessions().is_empty());
    assert_eq!(
        sandbox.destroy_session(request).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}
