use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
};
use pretty_assertions::assert_eq;

use super::*;

fn status(phase: &str) -> Pod {
    Pod {
        status: Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn startup_states_are_read_from_the_pod_status() {
    assert_eq!(startup_state(&Pod::default()), Startup::Pending);
    assert_eq!(startup_state(&status("Pending")), Startup::Pending);
    assert_eq!(startup_state(&status("Running")), Startup::Running);
    assert!(matches!(
        startup_state(&status("Failed")),
        Startup::Failed(_)
    ));
    let mut pulling = status("Pending");
    if let Some(status) = pulling.status.as_mut() {
        status.container_statuses = Some(vec![ContainerStatus {
            name: CONTAINER.into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ImagePullBackOff".into()),
                    message: Some("no such image".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
    }
    assert_eq!(
        startup_state(&pulling),
        Startup::Failed("ImagePullBackOff: no such image".into())
    );
    let mut unschedulable = status("Pending");
    if let Some(status) = unschedulable.status.as_mut() {
        status.conditions = Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some("0/3 nodes have runtime class gvisor".into()),
            ..Default::default()
        }]);
    }
    assert!(
        matches!(startup_state(&unschedulable), Startup::Failed(reason) if reason.contains("gvisor"))
    );
}
