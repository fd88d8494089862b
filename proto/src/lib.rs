//! gitflock's gRPC API, package `gitflock.v1`, generated from `proto/gitflock.proto`.

#![allow(clippy::all)]

pub mod v1 {
    tonic::include_proto!("gitflock.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("gitflock_descriptor");
}
