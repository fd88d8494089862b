//! The API's edge: who may call (the bearer-token check) and what a store failure looks like
//! to a client. One mapping for every service, so a Redis failure reads the same whichever
//! call met it, and no Redis text (which could echo a URL) reaches a client.

use crate::store::StoreError;
use std::sync::Arc;
use tonic::{Request, Status};

/// A store error as a gRPC status: bad input is INVALID_ARGUMENT, a refused fenced write
/// FAILED_PRECONDITION, Redis trouble UNAVAILABLE with its category only (the client may retry;
/// CreateTask retries are made safe by `request_id`), a malformed reply INTERNAL with its
/// category only.
pub fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::Invalid(m) => Status::invalid_argument(m),
        StoreError::NotMaster => Status::failed_precondition("not the master"),
        e @ StoreError::Redis(_) => {
            Status::unavailable(format!("redis unavailable: {}", e.category()))
        }
        // Retrying will not help: the data or the scripts are not what this node expects.
        e @ StoreError::Reply(_) => Status::internal(format!("redis: {}", e.category())),
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Status {
        store_status(e)
    }
}

/// The bearer-token check, in constant time. Health and reflection are served without it.
#[derive(Clone)]
pub struct Auth {
    expected: Arc<Vec<u8>>,
}

impl Auth {
    pub fn new(token: &str) -> Auth {
        Auth {
            expected: Arc::new(format!("Bearer {token}").into_bytes()),
        }
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(got) = req.metadata().get("authorization") else {
            return Err(Status::unauthenticated(
                "missing authorization: Bearer <cluster token>",
            ));
        };
        if gitflock_core::secret::same(got.as_bytes(), &self.expected) {
            Ok(req)
        } else {
            Err(Status::unauthenticated("wrong cluster token"))
        }
    }
}
