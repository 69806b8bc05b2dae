mod github;
mod hardening;
mod pulls;
mod repos;
mod support;
