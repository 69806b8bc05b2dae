mod chaos;
mod dashboard;
mod gates;
mod recovery;
mod support;
mod task_flow;
