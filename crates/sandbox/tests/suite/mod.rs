mod changes;
mod exec;
mod files;
mod isolation;
mod session;
mod support;
