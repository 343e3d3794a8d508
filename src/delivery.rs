//! The delivery of the outbox's letters: due letters are taken as attempts end, up to
//! `outbox.concurrency` under way, each sent by its notifier; a failed attempt is due again after a backoff with jitter, and after
//! `outbox.max_attempts` (or a final refusal) the letter is a dead letter. Letters that a
//! process left behind, claimed or held, are taken back here too.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::App;
use crate::notify::outbox::{Claimed, Held, Letter, Outbox};
use crate::notify::{DeliveryError, Notifications};

/// How often letters left by processes that died are looked for, and the depth measured.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);
/// The longest wait for a due letter when nothing wakes the delivery (a letter written by
/// another process, or `librarian outbox retry`).
const POLL_EVERY: Duration = Duration::from_secs(1);
/// The shortest wait for a letter due soon (one due already was just taken by another process).
const AT_LEAST: Duration = Duration::from_millis(10);
/// A held letter older than this was left by a process that died while its record was
/// stored: no store takes this long.
const HELD_AT_MOST: Duration = Duration::from_secs(15 * 60);
/// What an attempt may take beyond its notifier's timeout before it is cut off.
const GRACE: Duration = Duration::from_secs(5);
/// A claim this much older than the longest timeout of any notifier (and the grace) was left
/// by a process that died during its attempt: every attempt is cut off before, and writing
/// its outcome takes milliseconds.
const CLAIM_MARGIN: Duration = Duration::from_secs(10);

/// The running delivery; [`Delivery::stop`] lets the attempts under way end.
pub struct Delivery {
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Delivery {
    /// Starts delivering, if the app has notifiers.
    pub fn start(app: Arc<App>) -> Option<Self> {
        app.notifications.as_ref()?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(deliver(app, stopped));
        Some(Self { task, stop })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn deliver(app: Arc<App>, mut stopped: watch::Receiver<bool>) {
    let Some(notifications) = app.notifications.clone() else {
        return;
    };
    let outbox = notifications.outbox().clone();
    let concurrency = notifications.config().concurrency.get() as usize;
    let mut housekept = None::<tokio::time::Instant>;
    // Attempts under way; a slot that frees is filled at once, so that one slow receiver
    // holds up one slot, not the others.
    let mut attempts = JoinSet::new();
    while !*stopped.borrow() {
        if housekept.is_none_or(|at| at.elapsed() >= HOUSEKEEPING_EVERY) {
            housekeeping(&app, &outbox).await;
            housekept = Some(tokio::time::Instant::now());
        }
        let free = concurrency - attempts.len();
        if free > 0 {
            match outbox.take_due(free, Utc::now()).await {
                Ok(batch) => {
                    for claimed in batch {
                        attempts.spawn(attempt(app.clone(), notifications.clone(), claimed));
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "the outbox could not be read; trying again in a second")
                }
            }
        }
        // Full: wait for a slot. Else nothing more is due now: wait for the next due letter.
        let room = attempts.len() < concurrency;
        let until_due = match room {
            true => match outbox.next_due().await {
                Ok(Some(due)) => (due - Utc::now()).to_std().unwrap_or_default(),
                _ => POLL_EVERY,
            },
            false => HOUSEKEEPING_EVERY,
        };
        tokio::select! {
            Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
            _ = notifications.due(), if room => {}
            _ = tokio::time::sleep(until_due.clamp(AT_LEAST, POLL_EVERY)) => {}
            _ = stopped.changed() => {}
        }
    }
    // The attempts under way end (each is bounded by its notifier's timeout).
    while attempts.join_next().await.is_some() {}
}

/// Takes back what processes that died left, and measures the outbox.
async fn housekeeping(app: &App, outbox: &Arc<Outbox>) {
    let longest = app
        .loaded
        .config
        .notifiers
        .values()
        .map(|n| n.timeout())
        .max();
    let claimed_at_most = longest.unwrap_or_default() + GRACE + CLAIM_MARGIN;
    match outbox.reclaim(claimed_at_most, Utc::now()).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            letters = n,
            "letters whose attempt never ended are due again"
        ),
        Err(error) => tracing::error!(%error, "abandoned letters could not be taken back"),
    }
    match outbox.stale_held(HELD_AT_MOST).await {
        Ok(stale) => {
            for letter in stale {
                settle(app, outbox, letter).await;
            }
        }
        Err(error) => tracing::error!(%error, "held letters could not be read"),
    }
    match outbox.depth().await {
        Ok(depth) => {
            app.metrics.outbox_depth(depth.letters, depth.oldest);
            if let Some(notifications) = &app.notifications {
                notifications.measured(depth.letters);
            }
        }
        Err(error) => tracing::error!(%error, "the outbox could not be measured"),
    }
}

/// A held letter whose process died: sent if its record was stored, dropped if not. One that
/// cannot be decided yet (its pipeline cannot be read) stays held until the next look.
async fn settle(app: &App, outbox: &Outbox, letter: Letter) {
    let stored = match (app.pipeline(&letter.pipeline), letter.record) {
        (Some(pipeline), Some(id)) => match pipeline.record(id).await {
            Ok(found) => found.is_some(),
            Err(error) => {
                tracing::warn!(%error, event = %letter.event_id, "a held letter waits: its record cannot be read");
                return;
            }
        },
        _ => false,
    };
    let event = letter.event_id;
    let held = Held::left(letter);
    let settled = match stored {
        true => outbox.release(held).await,
        false => outbox.discard(held).await,
    };
    match settled {
        Ok(()) => {
            tracing::info!(%event, sent = stored, "a letter held by a process that died is settled")
        }
        Err(error) => tracing::error!(%error, "a held letter could not be settled"),
    }
}

/// One attempt at one letter, and what it leaves in the outbox.
async fn attempt(app: Arc<App>, notifications: Arc<Notifications>, mut claimed: Claimed) {
    let letter = &claimed.letter;
    let notifier = app.notifiers.get(&letter.notifier);
    let timeout = app.loaded.config.notifiers.get(&letter.notifier);
    let outcome = match (notifier, timeout.map(|n| n.timeout() + GRACE)) {
        (Some(notifier), Some(at_most)) => {
            tokio::time::timeout(at_most, notifier.deliver(&letter.event))
                .await
                .unwrap_or(Err(DeliveryError::Timeout(at_most)))
        }
        _ => Err(DeliveryError::Unknown(letter.notifier.clone())),
    };
    let config = notifications.config();
    let outbox = notifications.outbox();
    let notifier = letter.notifier.clone();
    let result = match outcome {
        Ok(()) => {
            app.metrics.delivery(&notifier, "delivered");
            outbox.delivered(claimed).await
        }
        Err(error) => {
            claimed.letter.attempts += 1;
            claimed.letter.last_error = Some(error.to_string());
            let attempts = claimed.letter.attempts;
            if error.is_final() || attempts >= config.max_attempts.get() {
                app.metrics.delivery(&notifier, "dead");
                tracing::error!(event = %claimed.letter.event_id, %notifier, attempts, %error,
                    "a letter is given up: `librarian outbox list` shows it, `librarian outbox retry` sends it again");
                outbox.bury(claimed).await
            } else {
                app.metrics.delivery(&notifier, "retried");
                let wait =
                    crate::clock::backoff(config.retry_delay, attempts).min(config.max_retry_delay);
                tracing::warn!(event = %claimed.letter.event_id, %notifier, attempts, %error, ?wait, "delivery failed; trying again");
                let due = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                outbox.reschedule(claimed, due).await
            }
        }
    };
    if let Err(error) = result {
        // The claim stays under way: it is taken back and sent again later.
        tracing::error!(%error, "the outcome of a delivery could not be written to the outbox");
    }
}
