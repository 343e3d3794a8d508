//! A typed client of the in-process service: tests say what they do in the API's words
//! (`submit`, `record`, `history`) instead of building requests.

use std::path::Path;
use std::sync::Arc;

use librarian::app::App;
use librarian::worker::Workers;
use salvo::http::header::CONTENT_TYPE;
use salvo::prelude::*;
use salvo::test::{RequestBuilder, ResponseExt, TestClient};
use serde_json::Value;

use super::{app, body, url};

/// The service of one test's config, called with a bearer token or without one.
#[derive(Clone)]
pub struct Client {
    /// The running app: its clock, its pipelines.
    pub app: Arc<App>,
    service: Arc<Service>,
    token: Option<String>,
    /// The queue's workers, running while any copy of the client lives.
    workers: Option<Arc<Workers>>,
}

impl Client {
    /// Serves the config `toml` (written into `dir`, with a disk actor writing to `dir/data`).
    pub async fn start(dir: &Path, toml: &str) -> Self {
        let app = app(dir, toml).await;
        let service = Arc::new(librarian::http::service(app.clone()));
        let workers = Workers::start(app.clone(), None).map(Arc::new);
        Self {
            app,
            service,
            token: None,
            workers,
        }
    }

    /// Stops the service as a restart would: its workers finish, and its queue is closed for
    /// the next service on the same folder. Copies of the client must be gone.
    pub async fn stop(self) {
        let Self {
            app,
            service,
            workers,
            ..
        } = self;
        drop((app, service));
        if let Some(workers) = workers {
            let workers = Arc::into_inner(workers).expect("no other copy of the client");
            workers.stop().await;
        }
    }

    /// The same service, called with this bearer token.
    pub fn with_token(&self, token: &str) -> Self {
        self.called_with(Some(token))
    }

    /// The same service, called with this bearer token, or with none.
    pub fn called_with(&self, token: Option<&str>) -> Self {
        Self {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    /// Sends a request, with the client's token if it has one.
    pub async fn send(&self, mut request: RequestBuilder) -> Response {
        if let Some(token) = &self.token {
            request = request.add_header("authorization", format!("Bearer {token}"), true);
        }
        request.send(&*self.service).await
    }

    /// Submits an image and its labels, as JSON, to a pipeline.
    pub async fn submit(&self, pipeline: &str, image: &[u8], labels: Value) -> Response {
        let path = format!("/api/v1/pipelines/{pipeline}/submissions");
        self.post_json(&path, &body(image, labels)).await
    }

    /// Stores an image and its labels under this id, in the default pipeline.
    pub async fn put(&self, id: &str, image: &[u8], labels: Value) -> Response {
        let request = TestClient::put(url(&format!("/api/v1/submissions/{id}")));
        self.send(request.json(&body(image, labels))).await
    }

    /// Submits an image and its labels, as JSON, to a pipeline, asking for an asynchronous
    /// answer (`Prefer: respond-async`).
    pub async fn submit_async(&self, pipeline: &str, image: &[u8], labels: Value) -> Response {
        let path = format!("/api/v1/pipelines/{pipeline}/submissions");
        let request = TestClient::post(url(&path))
            .add_header("prefer", "respond-async", true)
            .json(&body(image, labels));
        self.send(request).await
    }

    /// A job, by id.
    pub async fn job(&self, id: &str) -> Response {
        self.get(&format!("/api/v1/jobs/{id}")).await
    }

    /// The job once it reached a final state: 303 when stored, else 200 with the job. Fails
    /// the test after a minute of waiting.
    pub async fn finished_job(&self, id: &str) -> Response {
        for _ in 0..1200 {
            let mut res = self.job(id).await;
            if res.status_code != Some(StatusCode::OK) {
                return res;
            }
            let job = json_of(&mut res).await;
            if !matches!(job["state"].as_str(), Some("queued" | "running")) {
                return self.job(id).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("job {id} did not finish within a minute");
    }

    /// The `job` events of a job's stream, read until the stream ends.
    pub async fn job_events(&self, id: &str) -> Vec<Value> {
        let mut res = self.get(&format!("/api/v1/jobs/{id}/events")).await;
        assert_eq!(res.status_code, Some(StatusCode::OK));
        let text = res.take_string().await.expect("an event stream");
        text.split("\n\n")
            .filter(|event| event.contains("event: job"))
            .map(|event| {
                let data = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .expect("an event has data");
                serde_json::from_str(data).expect("an event's data is JSON")
            })
            .collect()
    }

    pub async fn post_json(&self, path: &str, value: &Value) -> Response {
        self.send(TestClient::post(url(path)).json(value)).await
    }

    /// POSTs a multipart form: the image as a file part named `image`, then each text field.
    pub async fn post_form(&self, path: &str, image: &[u8], fields: &[(&str, &str)]) -> Response {
        let mut parts = vec![("image", Some("a.png"), image)];
        parts.extend(
            fields
                .iter()
                .map(|(name, value)| (*name, None, value.as_bytes())),
        );
        let (content_type, form) = multipart(&parts);
        let request = TestClient::post(url(path))
            .add_header(CONTENT_TYPE, content_type, true)
            .body(form);
        self.send(request).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(TestClient::get(url(path))).await
    }

    /// A stored record, by id.
    pub async fn record(&self, id: &str) -> Response {
        self.get(&format!("/api/v1/submissions/{id}")).await
    }

    /// A history page: `query` is what follows the `?`, or empty.
    pub async fn history(&self, query: &str) -> Response {
        self.get(&format!("/api/v1/submissions?{query}")).await
    }
}

/// A multipart body of these parts (name, filename for a file part, bytes), in order, and
/// its content type.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "XlibrarianX";
    let mut form = Vec::new();
    for (name, filename, bytes) in parts {
        let head = match filename {
            Some(file) => format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ),
            None => {
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
            }
        };
        form.extend_from_slice(head.as_bytes());
        form.extend_from_slice(bytes);
        form.extend_from_slice(b"\r\n");
    }
    form.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), form)
}

/// The JSON body of an answer.
pub async fn json_of(res: &mut Response) -> Value {
    res.take_json().await.expect("a JSON body")
}
