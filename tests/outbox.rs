//! The outbox's rules, checked the same on both places it keeps letters: a folder on local
//! disk, and MongoDB (a real secantusdb server on loopback) as with a RabbitMQ queue.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use librarian::config::notify::{EventKind, OutboxConfig};
use librarian::config::queue::QueueConfig;
use librarian::notify::outbox::{Depth, Letter, Outbox};
use uuid::Uuid;

fn letter(notifier: &str) -> Letter {
    Letter {
        event_id: Uuid::now_v7(),
        kind: EventKind::RecordStored,
        pipeline: "default".into(),
        record: Some(Uuid::now_v7()),
        notifier: notifier.into(),
        created_at: Utc::now(),
        attempts: 0,
        last_error: None,
        // An integer no float holds (2^53 + 1): kept exactly, not as a BSON double.
        event: serde_json::from_str(r#"{"type": "record.stored", "n": 9007199254740993}"#).unwrap(),
    }
}

fn later(seconds: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(seconds)
}

async fn a_held_letter_is_sent_only_once_released(outbox: Outbox) {
    let sent = letter("hook");
    let held = outbox.hold(vec![sent.clone()]).await.unwrap();
    assert!(outbox.take_due(10, Utc::now()).await.unwrap().is_empty());
    assert_eq!(outbox.depth().await.unwrap().letters, 0);
    outbox.release(held).await.unwrap();
    let taken = outbox.take_due(10, later(1)).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].letter, sent);
    assert_eq!(taken[0].letter.event["n"].to_string(), "9007199254740993");
    assert_eq!(
        outbox.depth().await.unwrap().letters,
        1,
        "under way still counts"
    );
    outbox
        .delivered(taken.into_iter().next().unwrap())
        .await
        .unwrap();
    assert_eq!(outbox.depth().await.unwrap(), Depth::default());
}

async fn a_discarded_letter_is_never_sent(outbox: Outbox) {
    let held = outbox
        .hold(vec![letter("hook"), letter("mail")])
        .await
        .unwrap();
    outbox.discard(held).await.unwrap();
    assert!(outbox.stale_held(Duration::ZERO).await.unwrap().is_empty());
    assert!(outbox.take_due(10, later(1)).await.unwrap().is_empty());
}

async fn a_held_letter_left_behind_is_found_and_settled(outbox: Outbox) {
    let left = letter("hook");
    let _forgotten = outbox.hold(vec![left.clone()]).await.unwrap();
    let young = outbox.stale_held(Duration::from_secs(60)).await.unwrap();
    assert!(young.is_empty(), "a letter being stored is not stale");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stale = outbox.stale_held(Duration::from_millis(10)).await.unwrap();
    assert_eq!(stale, vec![left.clone()]);
    let held = librarian::notify::outbox::Held::left(stale.into_iter().next().unwrap());
    outbox.release(held).await.unwrap();
    let taken = outbox.take_due(10, later(1)).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].letter.event_id, left.event_id);
}

async fn a_rescheduled_letter_waits_until_due_and_a_claim_is_taken_once(outbox: Outbox) {
    outbox.post(vec![letter("hook")]).await.unwrap();
    let mut taken = outbox.take_due(10, later(1)).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(
        outbox.take_due(10, later(1)).await.unwrap().is_empty(),
        "claimed once"
    );
    let mut claimed = taken.remove(0);
    claimed.letter.attempts = 1;
    claimed.letter.last_error = Some("the receiver answered 500".into());
    let due = later(60);
    outbox.reschedule(claimed, due).await.unwrap();
    assert!(outbox.take_due(10, later(1)).await.unwrap().is_empty());
    let next = outbox.next_due().await.unwrap().unwrap();
    assert_eq!(next.timestamp_millis(), due.timestamp_millis());
    let again = outbox.take_due(10, due).await.unwrap();
    assert_eq!(again[0].letter.attempts, 1);
    assert_eq!(
        again[0].letter.last_error.as_deref(),
        Some("the receiver answered 500")
    );
}

async fn the_earliest_due_is_taken_first_and_no_more_than_asked(outbox: Outbox) {
    // Due when created: a minute apart, posted the newest first.
    let letters: Vec<Letter> = (0..5)
        .map(|n| Letter {
            created_at: Utc::now() - chrono::Duration::minutes(n),
            ..letter("hook")
        })
        .collect();
    outbox.post(letters.clone()).await.unwrap();
    let first = outbox.take_due(2, later(1)).await.unwrap();
    let ids: Vec<Uuid> = first.iter().map(|c| c.letter.event_id).collect();
    assert_eq!(ids, [letters[4].event_id, letters[3].event_id]);
    for claimed in first {
        // Due in an hour: the others are taken first.
        outbox.reschedule(claimed, later(3600)).await.unwrap();
    }
    let rest = outbox.take_due(10, later(1)).await.unwrap();
    let ids: Vec<Uuid> = rest.iter().map(|c| c.letter.event_id).collect();
    let expected: Vec<Uuid> = letters[..3].iter().rev().map(|l| l.event_id).collect();
    assert_eq!(ids, expected);
}

async fn an_abandoned_claim_is_due_again_and_its_old_attempt_changes_nothing(outbox: Outbox) {
    outbox.post(vec![letter("hook")]).await.unwrap();
    let now = later(1);
    let mut first = outbox.take_due(10, now).await.unwrap();
    assert_eq!(first.len(), 1);
    let age = Duration::from_secs(60);
    assert_eq!(outbox.reclaim(age, now).await.unwrap(), 0);
    let after = now + chrono::Duration::seconds(61);
    assert_eq!(outbox.reclaim(age, after).await.unwrap(), 1);
    let second = outbox.take_due(10, after).await.unwrap();
    assert_eq!(second.len(), 1, "due again");
    // The first attempt ends late: the letter stays with the second.
    outbox.delivered(first.remove(0)).await.unwrap();
    assert_eq!(outbox.depth().await.unwrap().letters, 1);
    outbox
        .delivered(second.into_iter().next().unwrap())
        .await
        .unwrap();
    assert_eq!(outbox.depth().await.unwrap().letters, 0);
}

async fn a_dead_letter_is_listed_and_revived_with_its_attempts_reset(outbox: Outbox) {
    let (first, second) = (letter("hook"), letter("hook"));
    outbox
        .post(vec![first.clone(), second.clone()])
        .await
        .unwrap();
    for mut claimed in outbox.take_due(10, later(1)).await.unwrap() {
        claimed.letter.attempts = 10;
        claimed.letter.last_error = Some("the receiver answered 500".into());
        outbox.bury(claimed).await.unwrap();
    }
    assert_eq!(
        outbox.depth().await.unwrap().letters,
        0,
        "dead is not waiting"
    );
    let dead = outbox.dead().await.unwrap();
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter()
            .all(|l| l.attempts == 10 && l.last_error.is_some())
    );
    let unknown = Uuid::now_v7();
    assert_eq!(outbox.revive(Some(unknown), Utc::now()).await.unwrap(), 0);
    assert_eq!(
        outbox
            .revive(Some(first.event_id), Utc::now())
            .await
            .unwrap(),
        1
    );
    let left = outbox.dead().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event_id, second.event_id);
    let again = outbox.take_due(10, later(1)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].letter.event_id, first.event_id);
    assert_eq!(again[0].letter.attempts, 0);
}

async fn the_depth_names_the_oldest_waiting_letter(outbox: Outbox) {
    let mut old = letter("hook");
    old.created_at = Utc::now() - chrono::Duration::seconds(300);
    outbox
        .post(vec![letter("hook"), old.clone()])
        .await
        .unwrap();
    let depth = outbox.depth().await.unwrap();
    assert_eq!(depth.letters, 2);
    assert_eq!(
        depth.oldest.map(|t| t.timestamp_millis()),
        Some(old.created_at.timestamp_millis())
    );
}

/// Two processes taking from one outbox at once: every letter is taken by exactly one.
async fn two_deliveries_never_take_the_same_letter(first: Outbox, second: Outbox) {
    let letters: Vec<Letter> = (0..40).map(|_| letter("hook")).collect();
    first.post(letters.clone()).await.unwrap();
    let take = |outbox: Outbox| async move {
        let mut ids = Vec::new();
        loop {
            let batch = outbox.take_due(3, later(1)).await.unwrap();
            if batch.is_empty() {
                return ids;
            }
            ids.extend(batch.iter().map(|c| c.letter.event_id));
        }
    };
    let (a, b) = tokio::join!(take(first), take(second));
    assert!(!a.is_empty() && !b.is_empty(), "both took some");
    let mut all: Vec<Uuid> = a.into_iter().chain(b).collect();
    all.sort();
    let mut sent: Vec<Uuid> = letters.iter().map(|l| l.event_id).collect();
    sent.sort();
    assert_eq!(all, sent, "each once");
}

/// Each rule as a test of each place; `$open` makes a fresh outbox (and what keeps it).
macro_rules! rules {
    ($open:path) => {
        #[tokio::test]
        async fn held_letters() {
            let (_keep, outbox) = $open().await;
            super::a_held_letter_is_sent_only_once_released(outbox).await;
        }
        #[tokio::test]
        async fn discarded_letters() {
            let (_keep, outbox) = $open().await;
            super::a_discarded_letter_is_never_sent(outbox).await;
        }
        #[tokio::test]
        async fn held_letters_left_behind() {
            let (_keep, outbox) = $open().await;
            super::a_held_letter_left_behind_is_found_and_settled(outbox).await;
        }
        #[tokio::test]
        async fn rescheduled_letters() {
            let (_keep, outbox) = $open().await;
            super::a_rescheduled_letter_waits_until_due_and_a_claim_is_taken_once(outbox).await;
        }
        #[tokio::test]
        async fn order_and_limit() {
            let (_keep, outbox) = $open().await;
            super::the_earliest_due_is_taken_first_and_no_more_than_asked(outbox).await;
        }
        #[tokio::test]
        async fn abandoned_claims() {
            let (_keep, outbox) = $open().await;
            super::an_abandoned_claim_is_due_again_and_its_old_attempt_changes_nothing(outbox)
                .await;
        }
        #[tokio::test]
        async fn dead_letters() {
            let (_keep, outbox) = $open().await;
            super::a_dead_letter_is_listed_and_revived_with_its_attempts_reset(outbox).await;
        }
        #[tokio::test]
        async fn depth() {
            let (_keep, outbox) = $open().await;
            super::the_depth_names_the_oldest_waiting_letter(outbox).await;
        }
    };
}

mod disk {
    use super::*;

    fn config(dir: &std::path::Path) -> OutboxConfig {
        OutboxConfig {
            dir: dir.to_path_buf(),
            ..OutboxConfig::default()
        }
    }

    async fn open() -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&config(dir.path()), &QueueConfig::default())
            .await
            .unwrap();
        (dir, outbox)
    }

    rules!(open);

    #[tokio::test]
    async fn shared_by_two_processes() {
        let dir = tempfile::tempdir().unwrap();
        let queue = QueueConfig::default();
        let first = Outbox::open(&config(dir.path()), &queue).await.unwrap();
        let second = Outbox::open(&config(dir.path()), &queue).await.unwrap();
        super::two_deliveries_never_take_the_same_letter(first, second).await;
    }
}

#[cfg(feature = "amqp")]
mod mongo {
    use super::*;
    use common::servers::{self, Server, mongo_uri};

    /// The queue config that puts the outbox in `server`'s MongoDB; the broker is never
    /// reached by the outbox.
    fn queue(server: &Server) -> QueueConfig {
        serde_json::from_value(serde_json::json!({
            "kind": "amqp",
            "url": "amqp://127.0.0.1:1/%2f",
            "state": {"uri": mongo_uri(server)},
        }))
        .unwrap()
    }

    async fn open() -> (Server, Outbox) {
        let server = servers::mongo();
        let outbox = Outbox::open(&OutboxConfig::default(), &queue(&server))
            .await
            .unwrap();
        (server, outbox)
    }

    rules!(open);

    #[tokio::test]
    async fn shared_by_two_processes() {
        let server = servers::mongo();
        let first = Outbox::open(&OutboxConfig::default(), &queue(&server))
            .await
            .unwrap();
        let second = Outbox::open(&OutboxConfig::default(), &queue(&server))
            .await
            .unwrap();
        super::two_deliveries_never_take_the_same_letter(first, second).await;
    }

    #[tokio::test]
    async fn an_unreachable_mongodb_is_an_error_at_open() {
        let mut server = servers::mongo();
        let config = queue(&server);
        server.stop();
        let config = match config {
            QueueConfig::Amqp(mut amqp) => {
                amqp.connect_timeout = Duration::from_millis(500);
                QueueConfig::Amqp(amqp)
            }
            local => local,
        };
        let opened = Outbox::open(&OutboxConfig::default(), &config).await;
        let error = opened.err().expect("no outbox without MongoDB");
        assert!(
            error.to_string().starts_with("the outbox in MongoDB:"),
            "{error}"
        );
    }
}
