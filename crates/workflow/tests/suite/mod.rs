mod graph;
mod load;
mod redis;
mod replicas;
mod support;
