mod allow;
mod corpus;
mod diff;
mod redaction;
mod report;
mod support;
mod tree;
