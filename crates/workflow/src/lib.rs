//! The supervisor's workflow graph (plan, execute, review) with its task, event and checkpoint store.
