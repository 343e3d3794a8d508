//! The workers of the queue: each takes the next job that is due, completes its submission
//! on its pipeline, and records the outcome. A store that failed (5xx) is retried with
//! exponential backoff and jitter up to `max_attempts`; a rejection (4xx) is final at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::App;
use crate::fetch::fetch;
use crate::http::Problem;
use crate::http::codes;
use crate::jobs::{Claim, Claimed, Job, JobState, Queue, Source, Ticket};
use crate::pipeline::{Admission, Pipeline, Step, Submission};

/// The wait after the queue could not be read.
const AFTER_ERROR: Duration = Duration::from_secs(1);
/// How often finished jobs older than `keep_finished` are dropped.
const FORGET_EVERY: Duration = Duration::from_secs(3600);

/// The running workers; dropping them does not stop them, [`Workers::stop`] does.
pub struct Workers {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Workers {
    /// Starts `count` workers (unset: `queue.workers`, or one per core), if the app has a
    /// queue and the count is not 0.
    pub fn start(app: Arc<App>, count: Option<usize>) -> Option<Self> {
        let queue = app.queue.clone()?;
        let count = count
            .or(queue.policy().workers.map(usize::from))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        if count == 0 {
            return None;
        }
        let prefetch = u16::try_from(count).unwrap_or(u16::MAX);
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for _ in 0..count {
            tasks.spawn(work(app.clone(), queue.clone(), prefetch, stopped.clone()));
        }
        tasks.spawn(forget(queue, stopped));
        Some(Self { tasks, stop })
    }

    /// Lets each worker finish the job it runs, then stops them. A job cut short by the
    /// process ending instead runs again at the next start.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn work(app: Arc<App>, queue: Arc<Queue>, prefetch: u16, stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        match queue.claim(prefetch).await {
            Ok(Some((Claim::Ready(claimed), ticket))) => run(&app, &queue, *claimed, ticket).await,
            Ok(Some((Claim::Unreadable(job), ticket))) => {
                let detail = "the queued submission could not be read back; send it again";
                fail(&queue, ticket, job.id, detail).await;
            }
            Ok(Some((Claim::Exhausted(job), ticket))) => {
                let detail = format!(
                    "each of the job's {} runs stopped without an outcome (its worker ended)",
                    job.attempts - 1
                );
                fail(&queue, ticket, job.id, &detail).await;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%error, "the queue could not be read; trying again in a second");
                tokio::time::sleep(AFTER_ERROR).await;
            }
        }
    }
}

/// Ends a job that cannot run as failed.
async fn fail(queue: &Queue, ticket: Ticket, id: uuid::Uuid, detail: &str) {
    let problem = Problem::new(codes::INTERNAL, detail.to_owned());
    let failed = queue
        .finish(ticket, id, JobState::Failed, Some(document(&problem)))
        .await;
    if let Err(error) = failed {
        tracing::error!(job = %id, %error, "a job's outcome could not be recorded");
    }
}

async fn forget(queue: Arc<Queue>, mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        match queue.forget_finished().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "finished jobs past queue.keep_finished dropped"),
            Err(error) => tracing::warn!(%error, "finished jobs could not be dropped"),
        }
        tokio::select! {
            _ = tokio::time::sleep(FORGET_EVERY) => {}
            _ = stopped.changed() => {}
        }
    }
}

/// Completes one job's submission and records how it ended.
async fn run(app: &App, queue: &Queue, claimed: Claimed, ticket: Ticket) {
    let Claimed { job, source } = claimed;
    let outcome = match app.pipeline(&job.pipeline) {
        Some(pipeline) => complete(pipeline, queue, &job, source).await,
        None => Err(Problem::new(
            codes::PIPELINE_NOT_FOUND,
            format!("pipeline `{}` was removed from the config", job.pipeline),
        )),
    };
    let finished = match outcome {
        Ok(()) => queue.finish(ticket, job.id, JobState::Stored, None).await,
        Err(problem) => {
            if let Some(cause) = &problem.cause {
                tracing::warn!(job = %job.id, %cause, "job run failed");
            }
            let document = document(&problem);
            let attempts_left = job.attempts < queue.policy().max_attempts.get();
            match problem.status.is_server_error() && attempts_left {
                true => {
                    app.metrics.job("retried");
                    let delay = crate::clock::backoff(queue.policy().retry_delay, job.attempts);
                    queue.retry(ticket, job.id, delay, document).await
                }
                false => {
                    let state = match problem.status.is_client_error() {
                        true => JobState::Rejected,
                        false => JobState::Failed,
                    };
                    queue.finish(ticket, job.id, state, Some(document)).await
                }
            }
        }
    };
    match finished {
        Ok(done) if done.state.is_final() => {
            app.metrics.job(done.state.name());
            let took = (done.updated_at - done.created_at)
                .to_std()
                .unwrap_or_default();
            app.metrics.job_done(done.attempts, took);
            tracing::info!(job = %done.id, state = ?done.state, attempts = done.attempts, "job done");
        }
        Ok(_) => {}
        // The job stays running in the queue: it runs again at the next start.
        Err(error) => {
            tracing::error!(job = %job.id, %error, "a job's outcome could not be recorded")
        }
    }
}

/// A job's submission through its pipeline, its photo fetched first when it came as a URL
/// (then every check runs here: none could run without the photo).
async fn complete(
    pipeline: &Pipeline,
    queue: &Queue,
    job: &Job,
    source: Source,
) -> Result<(), Problem> {
    let steps = |step| queue.step(job, step);
    let prepared = match source {
        Source::Prepared(prepared) => prepared,
        Source::Url { url, labels, .. } => {
            steps(Step::Fetch).await;
            let config = pipeline.fetch.clone();
            let image = tokio::task::spawn_blocking(move || fetch(&url, &config))
                .await
                .map_err(|e| {
                    Problem::new(codes::INTERNAL, "the fetch stopped").with_cause(e.to_string())
                })??;
            match pipeline
                .admit(Submission { image, labels }, Some(job.id))
                .await?
            {
                Admission::Replayed(_) => return Ok(()),
                Admission::Ready(prepared) => prepared,
            }
        }
    };
    let completed = pipeline.complete(prepared, Some(job.id), steps).await;
    completed.map(drop).map_err(Problem::from)
}

/// The problem+json a job keeps.
fn document(problem: &Problem) -> serde_json::Value {
    serde_json::to_value(problem.document()).expect("a problem serializes")
}
