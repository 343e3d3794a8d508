//! Photos in S3 (or any S3-compatible server): `<prefix><id>.<ext>` with its content type and
//! the record id and sha256 as metadata, created only when absent; optionally the record JSON
//! beside it as `<prefix><id>.json`.

use std::path::Path;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use librarian_model::{ImageFormat, Record};
use uuid::Uuid;

use super::S3Config;
use crate::{Actor, ActorError, ImageReader, RecordReader};

/// S3 refuses parts smaller than 5 MiB (all but the last).
const MIN_PART: usize = 5 * 1024 * 1024;

pub struct S3Actor {
    client: Client,
    config: S3Config,
}

/// S3's answers that retrying cannot change: the bucket is missing, or the credentials
/// are wrong or not allowed.
const REFUSALS: [&str; 6] = [
    "NoSuchBucket",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "InvalidBucketName",
];

fn failed<E: ProvideErrorMetadata + std::error::Error + 'static>(
    what: &str,
    e: SdkError<E, HttpResponse>,
) -> ActorError {
    if let Some(service) = e.as_service_error() {
        let code = service.code().unwrap_or_default();
        let message = service.message().unwrap_or(code);
        let status = e.raw_response().map(|r| r.status().as_u16());
        // HEAD answers carry no body, so no code: a 403 says it.
        if REFUSALS.contains(&code) || status == Some(403) {
            // The SDK's text is then only the status's name.
            let said = match status {
                Some(403) if message == code || message.is_empty() => {
                    "AccessDenied: the credentials are not allowed".to_owned()
                }
                _ => format!("{code}: {message}"),
            };
            return ActorError::Refused(format!("S3 {what}: {said}"));
        }
    }
    // The chain of causes, not only "dispatch failure": connection refused, DNS, TLS.
    let chain = DisplayErrorContext(&e);
    ActorError::Io(std::io::Error::other(format!("S3 {what}: {chain}")))
}

/// The PEM text of a CA file, refused unless it holds at least one certificate and nothing
/// unreadable: a wrong file would otherwise surface as "unknown issuer" on the first request.
fn authorities(file: &Path) -> Result<Vec<u8>, ActorError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let named =
        |reason: String| ActorError::Corrupt(format!("ca_file {}: {reason}", file.display()));
    let pem = std::fs::read(file).map_err(|e| named(e.to_string()))?;
    let mut count = 0;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        certificate.map_err(|e| named(e.to_string()))?;
        count += 1;
    }
    match count {
        0 => Err(named("holds no PEM certificate".into())),
        _ => Ok(pem),
    }
}

/// Whether S3 refused a conditional write because the key exists.
fn precondition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "PreconditionFailed" || c == "ConditionalRequestConflict")
}

impl S3Actor {
    /// Checks the values that do not need the server, and reads `ca_file`: the PEM text of
    /// its certificates, when it names one.
    pub fn check(config: &S3Config, base_dir: &Path) -> Result<Option<Vec<u8>>, ActorError> {
        if config.bucket.is_empty() {
            return Err(ActorError::Corrupt("bucket must name a bucket".into()));
        }
        if config.multipart_threshold_bytes < MIN_PART {
            return Err(ActorError::Corrupt(format!(
                "multipart_threshold_bytes must be at least {MIN_PART}"
            )));
        }
        config
            .ca_file
            .as_ref()
            .map(|file| authorities(&base_dir.join(file)))
            .transpose()
    }

    pub async fn open(config: &S3Config, base_dir: &Path) -> Result<Self, ActorError> {
        let authorities = Self::check(config, base_dir)?;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout)
            .operation_timeout(config.operation_timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .timeout_config(timeouts);
        if let (Some(key), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(
                key,
                secret,
                config.session_token.clone(),
                None,
                "librarian-config",
            ));
        }
        if let Some(pem) = authorities {
            let trust = TrustStore::default().with_pem_certificate(pem);
            let context = TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .map_err(|e| ActorError::Corrupt(format!("ca_file: {e}")))?;
            let client = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .tls_context(context)
                .build_https();
            loader = loader.http_client(client);
        }
        let shared = loader.load().await;
        // Checksums only where S3 requires them: many S3-compatible servers reject the
        // streaming checksum trailers newer SDKs send by default.
        let mut s3 = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        if let Some(endpoint) = &config.endpoint {
            s3 = s3.endpoint_url(endpoint);
        }
        Ok(Self {
            client: Client::from_conf(s3.build()),
            config: config.clone(),
        })
    }

    fn key(&self, id: Uuid, extension: &str) -> String {
        format!("{}{id}.{extension}", self.config.prefix)
    }

    async fn exists(&self, key: &str) -> Result<bool, ActorError> {
        match self
            .client
            .head_object()
            .bucket(&self.config.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(failed("head", e)),
        }
    }

    async fn put_image(&self, record: &Record, key: &str, image: &[u8]) -> Result<(), ActorError> {
        let id = record.id.to_string();
        if image.len() > self.config.multipart_threshold_bytes {
            return self.put_in_parts(record, key, image).await;
        }
        let put = self
            .client
            .put_object()
            .bucket(&self.config.bucket)
            .key(key)
            .content_type(record.image.format.mime())
            .metadata("record-id", &id)
            .metadata("sha256", &record.image.sha256)
            .if_none_match("*")
            .body(ByteStream::from(image.to_vec()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) if precondition_failed(&e) => Err(ActorError::AlreadyExists(record.id)),
            Err(e) => Err(failed("put", e)),
        }
    }

    async fn put_in_parts(
        &self,
        record: &Record,
        key: &str,
        image: &[u8],
    ) -> Result<(), ActorError> {
        let bucket = &self.config.bucket;
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(record.image.format.mime())
            .metadata("record-id", record.id.to_string())
            .metadata("sha256", &record.image.sha256)
            .send()
            .await
            .map_err(|e| failed("create multipart upload", e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let mut parts = Vec::new();
        let mut outcome = Ok(());
        for (index, chunk) in image
            .chunks(self.config.multipart_threshold_bytes)
            .enumerate()
        {
            let number = index as i32 + 1;
            let part = self
                .client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await;
            match part {
                Ok(done) => parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(done.e_tag().map(str::to_owned))
                        .build(),
                ),
                Err(e) => {
                    outcome = Err(failed("upload part", e));
                    break;
                }
            }
        }
        if outcome.is_ok() {
            let complete = self
                .client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .if_none_match("*")
                .send()
                .await;
            outcome = match complete {
                Ok(_) => return Ok(()),
                Err(e) if precondition_failed(&e) => Err(ActorError::AlreadyExists(record.id)),
                Err(e) => Err(failed("complete multipart upload", e)),
            };
        }
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
        outcome
    }

    async fn delete(&self, key: &str) -> Result<(), ActorError> {
        self.client
            .delete_object()
            .bucket(&self.config.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| failed("delete", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ActorError> {
        match self
            .client
            .get_object()
            .bucket(&self.config.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => {
                let bytes = object
                    .body
                    .collect()
                    .await
                    .map_err(|e| ActorError::Io(std::io::Error::other(e)))?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(failed("get", e)),
        }
    }
}

#[async_trait]
impl Actor for S3Actor {
    fn location(&self, record: &Record) -> String {
        format!(
            "s3://{}/{}",
            self.config.bucket,
            self.key(record.id, record.image.format.extension())
        )
    }

    async fn store(&self, record: &Record, image: &[u8]) -> Result<(), ActorError> {
        let image_key = self.key(record.id, record.image.format.extension());
        // Servers that ignore If-None-Match would overwrite: ask first, then write
        // conditionally where the server supports it.
        if self.exists(&image_key).await? {
            return Err(ActorError::AlreadyExists(record.id));
        }
        self.put_image(record, &image_key, image).await?;
        if self.config.record_json {
            let json = serde_json::to_vec_pretty(record)
                .map_err(|e| ActorError::Corrupt(e.to_string()))?;
            let put = self
                .client
                .put_object()
                .bucket(&self.config.bucket)
                .key(self.key(record.id, "json"))
                .content_type("application/json")
                .metadata("record-id", record.id.to_string())
                .body(ByteStream::from(json))
                .send()
                .await;
            if let Err(e) = put {
                let _ = self.delete(&image_key).await;
                return Err(failed("put record", e));
            }
        }
        Ok(())
    }

    async fn remove(&self, id: Uuid) -> Result<(), ActorError> {
        self.delete(&self.key(id, "json")).await?;
        for format in ImageFormat::ALL {
            self.delete(&self.key(id, format.extension())).await?;
        }
        Ok(())
    }

    async fn ready(&self) -> Result<(), ActorError> {
        self.client
            .head_bucket()
            .bucket(&self.config.bucket)
            .send()
            .await
            .map_err(
                |e| match e.as_service_error().is_some_and(|s| s.is_not_found()) {
                    true => ActorError::Refused(
                        "S3 head bucket: NoSuchBucket: the bucket does not exist".into(),
                    ),
                    false => failed("head bucket", e),
                },
            )?;
        Ok(())
    }
}

/// Built as a reader only when the config stores the record JSON (`record_json`).
#[async_trait]
impl RecordReader for S3Actor {
    async fn record(&self, id: Uuid) -> Result<Option<Record>, ActorError> {
        match self.get(&self.key(id, "json")).await? {
            Some(json) => serde_json::from_slice(&json)
                .map(Some)
                .map_err(|e| ActorError::Corrupt(e.to_string())),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl ImageReader for S3Actor {
    async fn image(&self, id: Uuid, format: ImageFormat) -> Result<Option<Vec<u8>>, ActorError> {
        self.get(&self.key(id, format.extension())).await
    }
}
