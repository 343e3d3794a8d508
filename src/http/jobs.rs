//! A queued submission's job: its state, and the news of each change as Server-Sent Events.

use std::convert::Infallible;
use std::sync::Arc;

use salvo::http::StatusCode;
use salvo::prelude::*;
use salvo::sse::{SseEvent, SseKeepAlive};
use tokio::sync::broadcast::{Receiver, error::RecvError};
use uuid::Uuid;

use super::codes;
use super::guard::caller;
use super::problem::Problem;
use super::routes::{app, parse_id, set_location};
use crate::app::App;
use crate::jobs::{Job, JobState, Progress, Queue};

fn missing(id: Uuid) -> Problem {
    Problem::new(codes::JOB_NOT_FOUND, format!("no job with id {id}"))
}

/// The id in the path and the queue that may hold its job.
fn queue_of(app: &App, req: &Request) -> Result<(Uuid, Arc<Queue>), Problem> {
    let id = parse_id(&req.param::<String>("id").unwrap_or_default())?;
    let queue = app.queue.clone().ok_or_else(|| missing(id))?;
    Ok((id, queue))
}

/// The job, when the caller may read its pipeline's records: a job the caller may not read
/// is answered as missing, like a record.
async fn readable_job(app: &App, queue: &Queue, depot: &Depot, id: Uuid) -> Result<Job, Problem> {
    let caller = caller(depot);
    queue
        .job(id)
        .await?
        .filter(|j| {
            app.access(&j.pipeline)
                .authorize_read(&caller, &j.pipeline)
                .is_ok()
        })
        .ok_or_else(|| missing(id))
}

/// `200` with the job while it is not stored (or when it was rejected or failed); `303` to
/// the record once it is.
#[handler]
pub async fn get_job(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), Problem> {
    let app = app(depot);
    let (id, queue) = queue_of(&app, req)?;
    let job = readable_job(&app, &queue, depot, id).await?;
    if job.state == JobState::Stored {
        res.status_code(StatusCode::SEE_OTHER);
        set_location(res, &format!("/api/v1/submissions/{}", job.id));
    }
    res.render(Json(&job));
    Ok(())
}

/// What an events stream has still to send.
struct Events {
    id: Uuid,
    queue: Arc<Queue>,
    current: Option<Job>,
    changes: Receiver<Job>,
    /// How far the job had got in the last event sent.
    sent: Option<Progress>,
    ended: bool,
}

impl Events {
    /// The job's next change, if it is further than the last one sent: a change made between
    /// listening and reading the current state arrives after that state, and is not sent
    /// again. After a gap (the stream fell behind), the state is read afresh.
    async fn next(&mut self) -> Option<Job> {
        loop {
            let job = match self.current.take() {
                Some(job) => job,
                None => match self.changes.recv().await {
                    Ok(job) if job.id == self.id => job,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => self.queue.job(self.id).await.ok().flatten()?,
                    Err(RecvError::Closed) => return None,
                },
            };
            if self.sent.is_none_or(|sent| job.progress() > sent) {
                self.sent = Some(job.progress());
                return Some(job);
            }
        }
    }
}

/// Server-Sent Events, each a `job` event holding the job: the current state first, then each
/// change of state or stage; the stream ends after the final state.
#[handler]
pub async fn job_events(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), Problem> {
    let app = app(depot);
    let (id, queue) = queue_of(&app, req)?;
    // Listening before reading the state, so that no change falls between the two.
    let changes = queue.changes();
    let job = readable_job(&app, &queue, depot, id).await?;
    let events = Events {
        id: job.id,
        queue,
        current: Some(job),
        changes,
        sent: None,
        ended: false,
    };
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        if events.ended {
            return None;
        }
        let job = events.next().await?;
        events.ended = job.state.is_final();
        let event = SseEvent::default()
            .name("job")
            .json(&job)
            .expect("a job serializes");
        Some((Ok::<_, Infallible>(event), events))
    });
    SseKeepAlive::new(stream).stream(res);
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use tokio::sync::broadcast;

    use super::*;
    use crate::config::queue::{LocalQueueConfig, QueueConfig};
    use crate::pipeline::Step;

    fn job(id: Uuid, state: JobState, stage: Option<Step>, attempts: u32) -> Job {
        Job {
            id,
            pipeline: "default".into(),
            state,
            stage,
            attempts,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            problem: None,
        }
    }

    /// The places the events of a stream name, read until its end.
    async fn sent(current: Job, changes: Vec<Job>) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let config = QueueConfig::Local(LocalQueueConfig {
            file: dir.path().join("queue.redb"),
            ..Default::default()
        });
        let (tell, listen) = broadcast::channel(16);
        for change in changes {
            tell.send(change).unwrap();
        }
        drop(tell);
        let mut events = Events {
            id: current.id,
            queue: Arc::new(Queue::open(&config).await.unwrap()),
            current: Some(current),
            changes: listen,
            sent: None,
            ended: false,
        };
        let mut places = Vec::new();
        while let Some(job) = events.next().await {
            let stage = job.stage.map(|s| format!("/{s:?}")).unwrap_or_default();
            places.push(format!("{:?}{stage} #{}", job.state, job.attempts));
        }
        places
    }

    #[tokio::test]
    async fn changes_made_before_the_state_was_read_are_not_sent_after_it() {
        use JobState::{Queued, Running, Stored};
        let id = Uuid::now_v7();
        let other = Uuid::now_v7();
        let current = job(id, Running, Some(Step::Decode), 1);
        let changes = vec![
            job(id, Running, None, 1),
            job(id, Running, Some(Step::Decode), 1),
            job(other, Stored, None, 1),
            job(id, Running, Some(Step::Store), 1),
            job(id, Queued, None, 1),
            job(id, Running, None, 2),
            job(id, Stored, None, 2),
        ];
        assert_eq!(
            sent(current, changes).await,
            [
                "Running/Decode #1",
                "Running/Store #1",
                "Queued #1",
                "Running #2",
                "Stored #2"
            ]
        );
    }
}
