mod support;
mod task_flow;
