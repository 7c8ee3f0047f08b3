"""The Custody gRPC node: services, sequencing front end, access control."""
