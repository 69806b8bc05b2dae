//! Starts the fleet as processes on loopback and waits for each service to be healthy.
