mod grpc;
