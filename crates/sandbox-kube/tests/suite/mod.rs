mod mock_api;
