//! Gateway: REST and WebSocket API of the platform, served with axum; gRPC client inside.
