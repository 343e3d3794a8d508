//! The running service's state: every pipeline built from a checked config.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::num::NonZeroUsize;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::auth::{Access, Auth};
use crate::clock::ServiceClock;
use crate::config::{Config, ConfigError, DEFAULT_PIPELINE, Loaded, PipelineConfig};
use librarian_actors::Built;
use librarian_validators::Validator;

use crate::extract::{self, Extractor};
use crate::imaging::DecodePool;
use crate::jobs::Queue;
use crate::metrics::Metrics;
use crate::notify::{self, Notifications, Notifier};
use crate::orphans::Orphans;
use crate::pipeline::{Named, Pipeline, Readers};

/// The names of one kind of component that some pipeline uses, each once.
fn used<'a>(
    config: &'a Config,
    names: impl Fn(&'a PipelineConfig) -> &'a Vec<String>,
) -> BTreeSet<&'a String> {
    config.pipelines.values().flat_map(names).collect()
}

pub struct App {
    pub loaded: Loaded,
    pub pipelines: BTreeMap<String, Arc<Pipeline>>,
    /// Permits for submissions in flight (`server.max_in_flight`).
    pub in_flight: Arc<Semaphore>,
    /// How many permits there are.
    pub in_flight_cap: usize,
    /// Permits for bodies being received (`server.max_uploads`).
    pub uploads: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<Auth>,
    /// What the records of a pipeline the config no longer names need.
    pub removed_pipeline_access: Access,
    /// The time rate limits count in.
    pub clock: ServiceClock,
    /// The bounded decode pool the pipelines share; thumbnails use it too.
    pub decode_pool: Arc<DecodePool>,
    /// Where asynchronous submissions wait; none in a one-off command (`scan`), which must
    /// not hold the queue a running server works.
    pub queue: Option<Arc<Queue>>,
    /// The outbox of notifications; none when no pipeline notifies, or in a one-off command.
    pub notifications: Option<Arc<Notifications>>,
    /// Every notifier some pipeline uses, by name.
    pub notifiers: BTreeMap<String, Arc<dyn Notifier>>,
}

/// Whether the app opens the queue of asynchronous submissions (and the outbox).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Queueing {
    Open,
    Closed,
}

/// Every component some pipeline uses, built once each.
#[derive(Default)]
struct Components {
    validators: BTreeMap<String, Arc<dyn Validator>>,
    extractors: BTreeMap<String, Arc<dyn Extractor>>,
    actors: BTreeMap<String, Built>,
    notifiers: BTreeMap<String, Arc<dyn Notifier>>,
}

/// Whether actors are built (connecting to their servers) or only checked offline.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Actors {
    Connect,
    CheckOffline,
}

impl Components {
    async fn build(loaded: &Loaded, mode: Actors) -> Result<Self, ConfigError> {
        let config = &loaded.config;
        let mut validators = BTreeMap::new();
        let mut extractors = BTreeMap::new();
        let mut actors = BTreeMap::new();
        let mut notifiers = BTreeMap::new();
        let mut problems = Vec::new();
        let mut failed = |section: &str, name: &str, error: Box<dyn Error + Send + Sync>| {
            problems.push(ConfigError::Component {
                key: format!("{section}.{name}"),
                source: error,
            });
        };
        for name in used(config, |p| &p.validators) {
            match librarian_validators::build(&config.validators[name], &loaded.base_dir) {
                Ok(v) => drop(validators.insert(name.clone(), Arc::from(v))),
                Err(e) => failed("validators", name, e.into()),
            }
        }
        for name in used(config, |p| &p.extractors) {
            match extract::build(&config.extractors[name]) {
                Ok(e) => drop(extractors.insert(name.clone(), Arc::from(e))),
                Err(e) => failed("extractors", name, e.into()),
            }
        }
        for name in used(config, |p| &p.notify) {
            match notify::build(&config.notifiers[name]) {
                Ok(n) => drop(notifiers.insert(name.clone(), Arc::from(n))),
                Err(e) => failed("notifiers", name, e.into()),
            }
        }
        let mut unavailable = Vec::new();
        for name in used(config, |p| &p.actors) {
            let actor = &config.actors[name];
            if let Err(e) = librarian_actors::check(actor, &loaded.base_dir).await {
                failed("actors", name, e.into());
                continue;
            }
            if mode == Actors::Connect {
                // A valid config whose server does not answer: not a mistake in the file.
                match librarian_actors::build(actor, &loaded.base_dir).await {
                    Ok(built) => drop(actors.insert(name.clone(), built)),
                    Err(e) => unavailable.push(ConfigError::Unavailable {
                        actor: name.clone(),
                        source: e,
                    }),
                }
            }
        }
        problems.extend(unavailable);
        match problems.len() {
            0 => Ok(Self {
                validators,
                extractors,
                actors,
                notifiers,
            }),
            1 => Err(problems.remove(0)),
            _ => Err(ConfigError::Many(problems)),
        }
    }
}

/// For each kind of read, the first of `names` whose actor answers it. The config check
/// refused pipelines that cannot read records or images back, so both are found.
fn readers(
    key: &str,
    names: &[String],
    built: &BTreeMap<String, Built>,
) -> Result<Readers, ConfigError> {
    fn first<T: ?Sized>(
        names: &[String],
        built: &BTreeMap<String, Built>,
        reader: impl Fn(&Built) -> Option<Arc<T>>,
    ) -> Option<Named<T>> {
        names.iter().find_map(|n| {
            reader(&built[n]).map(|component| Named {
                name: n.clone(),
                component,
            })
        })
    }
    let needed = |what: &str| ConfigError::key(key, format!("no actor reads {what} back"));
    Ok(Readers {
        records: first(names, built, |b| b.records.clone()).ok_or_else(|| needed("records"))?,
        images: first(names, built, |b| b.images.clone()).ok_or_else(|| needed("images"))?,
        history: first(names, built, |b| b.history.clone()),
    })
}

impl App {
    /// Checks every component some pipeline uses, without contacting any server.
    pub async fn check(loaded: &Loaded) -> Result<(), ConfigError> {
        Auth::new(loaded)?;
        Components::build(loaded, Actors::CheckOffline)
            .await
            .map(drop)
    }

    /// Builds the components that pipelines use, each once, the pipelines from them, and
    /// opens the queue.
    pub async fn build(loaded: Loaded) -> Result<Self, ConfigError> {
        Self::build_with(loaded, Queueing::Open).await
    }

    pub async fn build_with(loaded: Loaded, queueing: Queueing) -> Result<Self, ConfigError> {
        let built = Components::build(&loaded, Actors::Connect).await?;
        let auth = Auth::new(&loaded)?;
        let config = &loaded.config;
        let cores = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
        let decode_pool = Arc::new(DecodePool::new(
            config.server.image_workers.unwrap_or(cores),
            config.server.image_time_budget,
            config.server.decode_memory_bytes,
        ));
        let orphans = Arc::new(Orphans::new(config.server.orphans_file.clone()));
        let metrics = Arc::new(Metrics::new());
        let notifies = config.pipelines.values().any(|p| !p.notify.is_empty());
        let notifications = match (queueing, notifies) {
            (Queueing::Open, true) => Some(Arc::new(
                Notifications::open(&config.outbox, &config.queue, &config.notifiers)
                    .await
                    .map_err(|e| ConfigError::component("outbox", e))?,
            )),
            _ => None,
        };
        fn pick<T: ?Sized>(names: &[String], built: &BTreeMap<String, Arc<T>>) -> Vec<Named<T>> {
            names
                .iter()
                .map(|n| Named {
                    name: n.clone(),
                    component: built[n].clone(),
                })
                .collect()
        }
        let writers = built
            .actors
            .iter()
            .map(|(name, b)| (name.clone(), b.writer.clone()))
            .collect();
        let pipelines = config
            .pipelines
            .iter()
            .map(|(name, p)| {
                let pipeline = Pipeline {
                    name: name.clone(),
                    access: Access::of(config, p),
                    image_field: p.image_field.clone(),
                    labels_field: p.labels_field.clone(),
                    validators: pick(&p.validators, &built.validators),
                    extractors: pick(&p.extractors, &built.extractors).into(),
                    actors: pick(&p.actors, &writers),
                    readers: readers(
                        &format!("pipelines.{name}.actors"),
                        &p.actors,
                        &built.actors,
                    )?,
                    decode_pool: decode_pool.clone(),
                    orphans: orphans.clone(),
                    metrics: metrics.clone(),
                    strip_metadata: p.strip_metadata,
                    keep_metadata: p.keep_metadata.clone(),
                    mode: p.mode,
                    fetch: p.fetch.clone(),
                    notify: p.notify.clone(),
                    notifications: notifications.clone(),
                };
                Ok((name.clone(), Arc::new(pipeline)))
            })
            .collect::<Result<_, ConfigError>>()?;
        let removed_pipeline_access = Access::global(config);
        let queue = match queueing {
            Queueing::Open => Some(Arc::new(
                Queue::open(&config.queue)
                    .await
                    .map_err(|e| ConfigError::component("queue", e))?,
            )),
            Queueing::Closed => None,
        };
        let cap = config
            .server
            .max_in_flight
            .map_or(4 * cores.get(), usize::from);
        let uploads = config
            .server
            .max_uploads
            .map_or(16 * cores.get(), usize::from);
        Ok(Self {
            loaded,
            pipelines,
            in_flight: Arc::new(Semaphore::new(cap)),
            in_flight_cap: cap,
            uploads: Arc::new(Semaphore::new(uploads)),
            metrics,
            auth: Arc::new(auth),
            removed_pipeline_access,
            clock: ServiceClock::new(),
            decode_pool,
            queue,
            notifications,
            notifiers: built.notifiers,
        })
    }

    pub fn pipeline(&self, name: &str) -> Option<&Arc<Pipeline>> {
        self.pipelines.get(name)
    }

    /// What the calls about a pipeline's records need, also for a pipeline since removed.
    pub fn access(&self, pipeline: &str) -> Access {
        self.pipelines
            .get(pipeline)
            .map_or(self.removed_pipeline_access, |p| p.access)
    }

    pub fn default_pipeline(&self) -> &Arc<Pipeline> {
        &self.pipelines[DEFAULT_PIPELINE]
    }
}
