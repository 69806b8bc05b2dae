mod dependencies;
mod gates;
mod graph;
mod hitl;
mod load;
mod redis;
mod replicas;
mod support;
