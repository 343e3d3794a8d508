//! The bounded pool every decode runs on.

use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use librarian_model::ImageFacts;
use tokio::sync::Semaphore;

use super::pixels::within_limit;
use super::{DECODE_PIXEL_LIMIT, ImageError, thumbnail_cost};

/// Runs image jobs (decoding, then extraction or a thumbnail) off the async runtime: at most
/// `workers` images at once,
/// within a memory budget for all of them together (so the bound does not grow with the core
/// count), each within the time budget. Large images (over a quarter of the memory budget)
/// take one worker fewer than there are, so a stream of them cannot make an ordinary photo
/// wait seconds for a worker.
pub struct DecodePool {
    permits: Arc<Semaphore>,
    large: Arc<Semaphore>,
    /// One permit per MiB of [`decode_cost`].
    memory: Arc<Semaphore>,
    memory_mib: u32,
    budget: Duration,
}

fn mib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1 << 20)).unwrap_or(u32::MAX)
}

impl DecodePool {
    pub fn new(workers: NonZeroUsize, budget: Duration, memory_bytes: u64) -> Self {
        let workers = workers.get();
        let memory_mib = mib(memory_bytes).max(1);
        Self {
            permits: Arc::new(Semaphore::new(workers)),
            large: Arc::new(Semaphore::new(workers.saturating_sub(1).max(1))),
            memory: Arc::new(Semaphore::new(memory_mib as usize)),
            memory_mib,
            budget,
        }
    }

    /// A JPEG of the image in colour, upright, its longer side at most `max_side` pixels;
    /// decoded under the same bounds as an analysis.
    pub async fn thumbnail(
        &self,
        bytes: Bytes,
        facts: ImageFacts,
        max_side: u32,
    ) -> Result<Vec<u8>, ImageError> {
        let cost = thumbnail_cost(&bytes, &facts);
        self.run(
            bytes,
            facts,
            DECODE_PIXEL_LIMIT,
            cost,
            move |bytes, facts| super::thumbnail::make(bytes, facts, max_side),
        )
        .await
    }

    /// Runs `job` on the blocking pool once a worker and `cost` bytes of the memory budget
    /// are free, within the time budget, its panics caught.
    pub async fn run<T: Send + 'static>(
        &self,
        bytes: Bytes,
        facts: ImageFacts,
        max_pixels: u64,
        cost: u64,
        job: impl FnOnce(&[u8], &ImageFacts) -> Result<T, ImageError> + Send + 'static,
    ) -> Result<T, ImageError> {
        let budget_ms = self.budget.as_millis() as u64;
        let format = facts.format;
        within_limit(&facts, max_pixels)?;
        let needed_mib = mib(cost);
        if needed_mib > self.memory_mib {
            return Err(ImageError::TooLargeToDecode {
                needed_mib,
                budget_mib: self.memory_mib,
            });
        }
        let large = needed_mib > self.memory_mib / 4;
        let permits = async {
            // A large image waits for its lane before it holds memory others could use.
            let lane = match large {
                true => Some(self.large.clone().acquire_owned().await?),
                false => None,
            };
            let memory = self.memory.clone().acquire_many_owned(needed_mib).await?;
            let worker = self.permits.clone().acquire_owned().await?;
            Ok::<_, tokio::sync::AcquireError>((lane, memory, worker))
        };
        let permits = tokio::time::timeout(self.budget, permits)
            .await
            .map_err(|_| ImageError::Busy)?
            .map_err(|_| ImageError::Busy)?;
        let job = tokio::task::spawn_blocking(move || {
            // The permits are held until the work really ends, so a decoder that overruns its
            // budget still counts against the pool and its memory, and cannot multiply.
            let _permits = permits;
            catch_unwind(AssertUnwindSafe(|| job(&bytes, &facts))).unwrap_or_else(|_| {
                Err(ImageError::Undecodable(
                    format,
                    "the decoder failed on this image".into(),
                ))
            })
        });
        match tokio::time::timeout(self.budget, job).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => Err(ImageError::Undecodable(format, join_error.to_string())),
            Err(_) => {
                tracing::warn!(
                    budget_ms,
                    "image analysis overran its budget; answering without it"
                );
                Err(ImageError::Timeout(budget_ms))
            }
        }
    }
}
