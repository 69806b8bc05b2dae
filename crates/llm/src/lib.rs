//! Client for OpenAI-compatible chat-completions endpoints, tool calls included.
