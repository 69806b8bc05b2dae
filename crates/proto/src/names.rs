//! The one place a checkpoint kind becomes its user-facing name and back: the name is the
//! proto value's in lower snake case without its prefix (see `CheckpointKind` in
//! `proto/agent/v1/orchestrator.proto`). The WebSocket events, the store and logs use it.

use crate::agent::v1::CheckpointKind;

/// The gRPC metadata key naming the user a call acts for (set by the gateway for signed-in
/// users); the supervisor records it in the audit log (`cap_runtime::acting_user`).
pub const ACTOR_METADATA: &str = "x-cap-actor";

impl CheckpointKind {
    /// The kind's name, e.g. `tests_passed`; `unspecified` for the zero value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::NodeCompleted => "node_completed",
            Self::Paused => "paused",
            Self::HumanApprovalRequired => "human_approval_required",
            Self::Interrupted => "interrupted",
            Self::AgentFinished => "agent_finished",
            Self::StepLimitReached => "step_limit_reached",
            Self::TestsPassed => "tests_passed",
            Self::TestsFailed => "tests_failed",
            Self::NoTests => "no_tests",
            Self::ContextReady => "context_ready",
            Self::ConstraintAdded => "constraint_added",
            Self::Aborted => "aborted",
            Self::Approved => "approved",
            Self::ContextCondensed => "context_condensed",
        }
    }

    /// The kind named `name` (as [`CheckpointKind::name`] writes it); `None` for anything else,
    /// `unspecified` included.
    pub fn from_name(name: &str) -> Option<Self> {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        Self::from_str_name(&format!("CHECKPOINT_KIND_{}", name.to_ascii_uppercase()))
            .filter(|kind| *kind != Self::Unspecified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_named_after_its_proto_value_and_parses_back() {
        let mut seen = 0;
        for value in 0..64 {
            let Ok(kind) = CheckpointKind::try_from(value) else {
                continue;
            };
            seen += 1;
            let expected = kind
                .as_str_name()
                .trim_start_matches("CHECKPOINT_KIND_")
                .to_ascii_lowercase();
            assert_eq!(kind.name(), expected);
            let parsed = CheckpointKind::from_name(kind.name());
            if kind == CheckpointKind::Unspecified {
                assert_eq!(parsed, None);
            } else {
                assert_eq!(parsed, Some(kind));
            }
        }
        assert_eq!(seen, 15);
        assert_eq!(CheckpointKind::from_name("TESTS_PASSED"), None);
        assert_eq!(CheckpointKind::from_name("tests passed"), None);
        assert_eq!(CheckpointKind::from_name(""), None);
    }
}
