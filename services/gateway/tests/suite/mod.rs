mod auth;
mod dashboard;
mod pull_requests;
mod run;
mod support;
mod tasks;
mod validation;
mod websocket;
