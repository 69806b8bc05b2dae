//! Test support: a scripted model server speaking the OpenAI chat-completions protocol.
