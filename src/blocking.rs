//! Blocking work of a store (files, an embedded database) run off the async runtime, so that
//! a slow disk holds up one request, never the runtime's threads.

use std::sync::Arc;

use tokio::task::JoinError;

/// Runs `work` on `store` on a thread for blocking work; a panic in it is an error.
pub async fn off_runtime<S, T, E>(
    store: &Arc<S>,
    work: impl FnOnce(&S) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    S: Send + Sync + 'static + ?Sized,
    T: Send + 'static,
    E: From<JoinError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || work(&store)).await?
}
