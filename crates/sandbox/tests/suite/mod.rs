mod attacks;
mod changes;
mod egress;
mod exec;
mod files;
mod isolation;
mod session;
mod support;
