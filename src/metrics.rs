//! Prometheus metrics, served at `GET /metrics` in the text format.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use librarian_model::{Barcode, Violation};

/// A timed step of handling a submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The body received and parsed.
    Read,
    /// Metadata stripped and the image header read.
    Prepare,
    /// Validators run, on the labels or on what was extracted.
    Validate,
    /// The pixels decoded.
    Decode,
    /// The extractors run.
    Extract,
    /// One actor stores the record.
    Store,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Prepare => "prepare",
            Stage::Validate => "validate",
            Stage::Decode => "decode",
            Stage::Extract => "extract",
            Stage::Store => "store",
        }
    }
}

/// How one submission ended, as the metrics count it.
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    /// Stored now, with the barcodes found.
    Stored { barcodes: &'a [Barcode] },
    /// The same submission again under its id: answered with the stored record.
    Replayed,
    /// Queued as a job (202); the job's end is counted by `jobs`.
    Queued,
    /// Its content refused (422), with each validator's findings.
    Rejected {
        code: &'static str,
        findings: &'a [Violation],
    },
    /// The request refused (another 4xx): a credential, a limit, a malformed body.
    Refused { code: &'static str },
    /// Back-pressure: the server asked the caller to come back later.
    Busy { code: &'static str },
    /// The server or a store failed.
    Failed { code: &'static str },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubmissionLabels {
    pipeline: String,
    outcome: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    pipeline: String,
    validator: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
    actor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    notifier: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FormatLabels {
    format: String,
}

fn stage_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    submissions: Family<SubmissionLabels, Counter>,
    rejections: Family<RejectionLabels, Counter>,
    stages: Family<StageLabels, Histogram, fn() -> Histogram>,
    barcodes: Family<FormatLabels, Counter>,
    in_flight: Gauge,
    orphans: Counter,
    history_skipped: Counter,
    jobs: Family<JobLabels, Counter>,
    job_seconds: Histogram,
    job_attempts: Histogram,
    queue_depth: Family<JobLabels, Gauge>,
    deliveries: Family<DeliveryLabels, Counter>,
    outbox_letters: Gauge,
    outbox_oldest_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Encoding walks the registry; one scrape at a time.
    encoding: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("librarian");
        let requests = Family::<RequestLabels, Counter>::default();
        let submissions = Family::<SubmissionLabels, Counter>::default();
        let rejections = Family::<RejectionLabels, Counter>::default();
        let stages = Family::<StageLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            stage_histogram,
        );
        let barcodes = Family::<FormatLabels, Counter>::default();
        let in_flight = Gauge::default();
        let orphans = Counter::default();
        let history_skipped = Counter::default();
        let jobs = Family::<JobLabels, Counter>::default();
        // 10 ms to about 5 minutes.
        let job_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        let job_attempts = Histogram::new([1.0, 2.0, 3.0, 5.0, 8.0, 13.0]);
        let queue_depth = Family::<JobLabels, Gauge>::default();
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let outbox_letters = Gauge::default();
        let outbox_oldest_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register("submissions", "Submissions by pipeline and outcome (stored, replayed, rejected, refused, busy, failed) with the problem code", submissions.clone());
        registry.register(
            "rejections",
            "Findings of validators that rejected a submission",
            rejections.clone(),
        );
        registry.register(
            "stage_seconds",
            "Time of each stage of a submission: read, validate, decode, extract, store by actor",
            stages.clone(),
        );
        registry.register(
            "barcodes",
            "Barcodes found in stored submissions, by format",
            barcodes.clone(),
        );
        registry.register(
            "submissions_in_flight",
            "Submissions being handled now",
            in_flight.clone(),
        );
        registry.register(
            "orphans",
            "Leftovers of failed stores that could not be removed",
            orphans.clone(),
        );
        registry.register(
            "history_records_skipped",
            "Records left out of history pages: unreadable, or larger than a page holds",
            history_skipped.clone(),
        );
        registry.register(
            "jobs",
            "Asynchronous jobs by the state they reached: queued, retried, stored, rejected, failed",
            jobs.clone(),
        );
        registry.register(
            "job_seconds",
            "Time from a job's 202 to its final state",
            job_seconds.clone(),
        );
        registry.register(
            "job_attempts",
            "Runs a job took to reach its final state",
            job_attempts.clone(),
        );
        registry.register(
            "queue_depth",
            "Jobs in the queue by state: queued (waiting) and running",
            queue_depth.clone(),
        );
        registry.register(
            "notifier_deliveries",
            "Attempts to deliver events by notifier and outcome: delivered, retried, dead",
            deliveries.clone(),
        );
        registry.register(
            "outbox_letters",
            "Events waiting in the outbox for a notifier (pending or being sent)",
            outbox_letters.clone(),
        );
        registry.register(
            "outbox_oldest_seconds",
            "Age of the oldest event waiting in the outbox (measured every 10 s; 0 when none)",
            outbox_oldest_seconds.clone(),
        );
        Self {
            registry,
            requests,
            submissions,
            rejections,
            stages,
            barcodes,
            in_flight,
            orphans,
            history_skipped,
            jobs,
            job_seconds,
            job_attempts,
            queue_depth,
            deliveries,
            outbox_letters,
            outbox_oldest_seconds,
            encoding: Mutex::new(()),
        }
    }

    /// Records a history page left out.
    pub fn history_skipped(&self, records: usize) {
        self.history_skipped.inc_by(records as u64);
    }

    /// A request answered: `route` is the route table's template of its path, `None` for a
    /// path the API does not have (counted as `other`, so that probes for random paths cannot
    /// grow the number of series).
    pub fn request(&self, method: &str, route: Option<&'static str>, status: u16) {
        let route = route.unwrap_or("other").to_owned();
        // Any method name can be sent; only the ones the API answers get a series of their own.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "OPTIONS" => method,
            _ => "other",
        };
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route,
                status,
            })
            .inc();
    }

    /// One submission's outcome, as it was answered.
    pub fn submission(&self, pipeline: &str, outcome: Outcome<'_>) {
        let (kind, code) = match outcome {
            Outcome::Stored { barcodes } => {
                for barcode in barcodes {
                    self.barcodes
                        .get_or_create(&FormatLabels {
                            format: barcode.format.name().to_owned(),
                        })
                        .inc();
                }
                ("stored", "")
            }
            Outcome::Replayed => ("replayed", ""),
            Outcome::Queued => ("queued", ""),
            Outcome::Rejected { code, findings } => {
                for violation in findings {
                    let labels = RejectionLabels {
                        pipeline: pipeline.to_owned(),
                        validator: violation.validator.clone(),
                        code: violation.finding.code.clone(),
                    };
                    self.rejections.get_or_create(&labels).inc();
                }
                ("rejected", code)
            }
            Outcome::Refused { code } => ("refused", code),
            Outcome::Busy { code } => ("busy", code),
            Outcome::Failed { code } => ("failed", code),
        };
        let labels = SubmissionLabels {
            pipeline: pipeline.to_owned(),
            outcome: kind.to_owned(),
            code: code.to_owned(),
        };
        self.submissions.get_or_create(&labels).inc();
    }

    /// A stage's time; `actor` names the actor of a [`Stage::Store`].
    pub fn stage(&self, stage: Stage, actor: Option<&str>, took: Duration) {
        let labels = StageLabels {
            stage: stage.name().to_owned(),
            actor: actor.unwrap_or_default().to_owned(),
        };
        self.stages
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// A job reached `state` (`queued`, `retried`, or a final one).
    pub fn job(&self, state: &str) {
        let labels = JobLabels {
            state: state.to_owned(),
        };
        self.jobs.get_or_create(&labels).inc();
    }

    /// A job reached its final state after `attempts` runs, `took` after its 202.
    pub fn job_done(&self, attempts: u32, took: Duration) {
        self.job_attempts.observe(f64::from(attempts));
        self.job_seconds.observe(took.as_secs_f64());
    }

    /// The queue's depth, as read before a scrape.
    pub fn queue_depth(&self, queued: u64, running: u64) {
        for (state, n) in [("queued", queued), ("running", running)] {
            let labels = JobLabels {
                state: state.to_owned(),
            };
            self.queue_depth
                .get_or_create(&labels)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// An attempt to deliver an event ended: `delivered`, `retried` or `dead`.
    pub fn delivery(&self, notifier: &str, outcome: &str) {
        let labels = DeliveryLabels {
            notifier: notifier.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.deliveries.get_or_create(&labels).inc();
    }

    /// The outbox's depth and the creation time of its oldest letter.
    pub fn outbox_depth(&self, letters: usize, oldest: Option<chrono::DateTime<chrono::Utc>>) {
        self.outbox_letters
            .set(i64::try_from(letters).unwrap_or(i64::MAX));
        let age = oldest.map_or(0.0, |t| {
            (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
        });
        self.outbox_oldest_seconds.set(age);
    }

    pub fn orphan(&self) {
        self.orphans.inc();
    }

    /// The text exposition, with the in-flight gauge read now.
    pub fn render(&self, in_flight: usize) -> String {
        let _one_at_a_time = self
            .encoding
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.in_flight.set(in_flight as i64);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_methods_share_one_series() {
        let metrics = super::Metrics::new();
        for i in 0..100 {
            metrics.request(&format!("M{i}"), Some("/healthz"), 405);
        }
        metrics.request("GET", Some("/healthz"), 200);
        let text = metrics.render(0);
        let series = text
            .lines()
            .filter(|l| l.starts_with("librarian_http_requests_total"))
            .count();
        assert_eq!(series, 2, "{text}");
        assert!(text.contains(r#"method="other""#));
    }
}
