mod graph;
mod support;
