mod graph;
mod load;
mod support;
