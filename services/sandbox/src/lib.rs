//! Sandbox service: create, exec (streamed), file access and destroy of isolated workspaces.
