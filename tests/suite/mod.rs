mod chaos;
mod dashboard;
mod recovery;
mod support;
mod task_flow;
