//! The journal as the engine sees it: the store lives on its own thread (database calls block,
//! and the PostgreSQL client must not run inside the engine's runtime), and the engine awaits
//! each call without blocking its own thread.

use std::sync::mpsc;

use tokio::sync::oneshot;

use super::{Backend, Result, StoreError};

type Job = Box<dyn FnOnce(&mut dyn Backend) + Send>;

/// A cheap handle to the journal thread; clone it freely. The thread ends when the last handle
/// is dropped.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Job>,
    location: String,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("location", &self.location)
            .finish()
    }
}

impl Journal {
    pub fn spawn(mut backend: Box<dyn Backend>) -> std::io::Result<Journal> {
        let location = backend.location();
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("taskdeck-journal".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(backend.as_mut());
                }
            })?;
        Ok(Journal { tx, location })
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs `f` on the store's thread and returns its result.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Backend) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |b| {
            let _ = reply.send(f(b));
        });
        self.tx.send(job).map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())?
    }

    /// Runs `f` on the store's thread without waiting for it.
    pub fn call_detached(&self, f: impl FnOnce(&mut dyn Backend) + Send + 'static) {
        let _ = self.tx.send(Box::new(f));
    }

    fn gone(&self) -> StoreError {
        StoreError::Db {
            location: self.location.clone(),
            detail: "the journal thread stopped".into(),
        }
    }
}
