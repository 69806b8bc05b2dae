mod cluster;
mod exec;
mod fake_api;
mod helm;
mod mock_api;
mod repo;
