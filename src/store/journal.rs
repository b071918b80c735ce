//! The journal as the engine sees it: the store lives on its own thread (database calls block,
//! and the PostgreSQL client must not run inside the engine's runtime), and the engine awaits
//! each call without blocking its own thread. Long reads (history, a past run's events, log
//! indexes) go to a second connection on a thread of its own when there is one, so they never
//! hold up the engine's commits.

use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use tokio::sync::oneshot;

use super::{Backend, Result, StoreError};

type Job = Box<dyn FnOnce(&mut dyn Backend) + Send>;

/// A cheap handle to the journal thread; clone it freely. The thread ends when the last handle
/// is dropped.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Job>,
    location: String,
    /// The store, shared with the thread (which locks it per job).
    backend: Arc<Mutex<Box<dyn Backend>>>,
    /// Whether `call_inline` may use the store on the caller's thread.
    inline: bool,
    /// A second connection, for reads only (`read`).
    reader: Option<mpsc::Sender<Job>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("location", &self.location)
            .finish()
    }
}

impl Journal {
    pub fn spawn(backend: Box<dyn Backend>) -> std::io::Result<Journal> {
        let location = backend.location();
        let inline = backend.inline_ok();
        let backend = Arc::new(Mutex::new(backend));
        let shared = backend.clone();
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("taskdeck-journal".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(lock(&shared).as_mut());
                }
            })?;
        Ok(Journal {
            tx,
            location,
            backend,
            inline,
            reader: None,
        })
    }

    /// Gives the journal a second connection to the same store, on its own thread, for `read`.
    pub fn with_reader(mut self, mut reader: Box<dyn Backend>) -> std::io::Result<Journal> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("taskdeck-journal-reader".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(reader.as_mut());
                }
            })?;
        self.reader = Some(tx);
        Ok(self)
    }

    /// Runs a read-only `f` on the reader connection (or, without one, on the store's thread).
    /// For reads that may take long: they must not delay the engine's commits.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Backend) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let Some(reader) = &self.reader else {
            return self.call(f).await;
        };
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |b| {
            let _ = reply.send(f(b));
        });
        reader.send(job).map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())?
    }

    /// Runs `f` right here on the caller's thread when the store allows it (SQLite), else on
    /// the store's thread. For the engine's commits: each one stands between a task's end and
    /// the next task's start, so the trip to another thread and back is worth saving.
    pub async fn call_inline<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Backend) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if self.inline {
            return f(lock(&self.backend).as_mut());
        }
        self.call(f).await
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

/// A job that panicked leaves the store as SQLite left it (its transaction rolled back), so
/// the next one may go on.
fn lock(backend: &Mutex<Box<dyn Backend>>) -> MutexGuard<'_, Box<dyn Backend>> {
    backend.lock().unwrap_or_else(|e| e.into_inner())
}
