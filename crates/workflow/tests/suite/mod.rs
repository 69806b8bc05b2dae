mod graph;
mod load;
mod replicas;
mod support;
