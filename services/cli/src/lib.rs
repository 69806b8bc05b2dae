//! The cap command: starts the whole fleet locally and runs the demo task.
