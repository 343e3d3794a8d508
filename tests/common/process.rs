//! The binary run as a user runs it: a clean environment, a server on a free port.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::servers::free_port;

pub const BIN: &str = env!("CARGO_BIN_EXE_librarian");

/// The binary in `dir` with `args`, a clean LIBRARIAN_* environment plus `env`.
pub fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir).args(args);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("LIBRARIAN_")) {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    command
}

/// Runs the binary to its end.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(dir, args, env).output().expect("the binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A running process of the binary, killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the server at `address` answers /healthz (at most 20 s).
pub fn until_healthy(address: &str) {
    let started = Instant::now();
    while ureq::get(format!("http://{address}/healthz"))
        .call()
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server starts"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `librarian serve` in `dir` on a free port with `args`, once it answers /healthz; the
/// server stops when the returned guard drops.
pub fn serve(dir: &Path, args: &[&str]) -> (Server, String) {
    serve_with_env(dir, args, &[])
}

/// [`serve`] with these environment variables, and none of the caller's `LIBRARIAN_*`.
pub fn serve_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Server, String) {
    let address = format!("127.0.0.1:{}", free_port());
    let mut command = command(dir, &["serve", "--bind", &address, "-q"], env);
    let child = command.args(args).stdout(Stdio::null()).spawn().unwrap();
    let server = Server(child);
    until_healthy(&address);
    (server, address)
}

/// A job as the server answers it, without following the 303 of a stored one.
pub fn job(address: &str, id: &str) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let mut res = agent
        .get(format!("http://{address}/api/v1/jobs/{id}"))
        .call()
        .unwrap();
    res.body_mut().read_json().unwrap()
}

/// The state of a job.
pub fn job_state(address: &str, id: &str) -> String {
    job(address, id)["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until every job is stored (two minutes at most).
pub fn until_stored(address: &str, ids: &[String]) {
    let started = Instant::now();
    for id in ids {
        while job_state(address, id) != "stored" {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "job {id} is stored: {}",
                job(address, id)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Asserts that `data` holds each job's record (document and photo) once, and nothing else
/// but what a write cut by a kill may leave (a temporary file, never a record).
pub fn one_record_each(data: &Path, ids: &[String]) {
    let mut names: Vec<String> = super::files(data)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with(".tmp-"))
        .collect();
    names.sort();
    let mut expected: Vec<String> = ids
        .iter()
        .flat_map(|id| [format!("{id}.json"), format!("{id}.png")])
        .collect();
    expected.sort();
    assert_eq!(names, expected, "each job's record, once");
}

/// `submit --async` of `dir/photo.png` under `id` with the labels `{"n": n}`; the job printed.
pub fn submit_async(dir: &Path, url: &str, id: &str, n: usize) -> Value {
    let labels = format!("{{\"n\": {n}}}");
    let args = [
        "submit",
        "photo.png",
        "--async",
        "--url",
        url,
        "--id",
        id,
        "--labels",
        &labels,
    ];
    let output = run(dir, &args, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let job: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(job["id"], id);
    job
}

/// The dead letters `librarian outbox list` prints.
pub fn dead_letters(dir: &Path) -> Vec<Value> {
    let output = run(dir, &["outbox", "list"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
