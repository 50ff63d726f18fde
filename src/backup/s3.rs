//! Offsite copies in S3-compatible object storage (`object_store`'s S3 client on the tree's
//! reqwest and rustls with ring).
//!
//! A copy is made only of a backup verified on the host: the file is streamed up in parts of
//! [`PART_SIZE`] with at most [`PARTS_IN_FLIGHT`] in flight (memory bounded whatever the size),
//! an upload that fails is aborted, the stored object is read back and its SHA-256 compared
//! with the manifest's, and only then is the manifest put beside it: an object without its
//! manifest is never listed, and is removed as a leftover by the job's next operation.
//!
//! The client is async; backup operations run on a blocking thread, so each call is driven on
//! the runtime's handle from there. Credentials never reach a message: object storage errors
//! carry the bucket and key, never the secret.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::destination::Destination;
use super::manifest::{self, MANIFEST_SUFFIX, Manifest, Scan};
use super::{BackupError, publish};
use crate::config::CopyConfig;

/// The size of one uploaded part: S3's minimum is 5 MiB.
pub const PART_SIZE: usize = 8 << 20;
/// Parts uploading at once; memory held by an upload is about this many parts plus one.
pub const PARTS_IN_FLIGHT: usize = 2;

/// One copy destination of a job.
#[derive(Debug)]
pub(crate) struct S3 {
    name: String,
    store: Arc<AmazonS3>,
    prefix: String,
    /// `s3://bucket/prefix`, for messages.
    location: String,
    runtime: tokio::runtime::Handle,
}

impl S3 {
    /// The client for `config`, driven on `runtime`.
    ///
    /// # Errors
    /// When the settings make no client (an endpoint the client refuses).
    pub fn open(config: &CopyConfig, runtime: tokio::runtime::Handle) -> Result<S3, BackupError> {
        // reqwest is built without a TLS provider of its own: the tree's is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let location = format!("s3://{}/{}", config.bucket, config.prefix);
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(config.access_key_id.expose_secret())
            .with_secret_access_key(config.secret_access_key.expose_secret())
            .with_virtual_hosted_style_request(!config.path_style);
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token.expose_secret());
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                // Plain http passes validation only for a server on this host.
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let store = builder.build().map_err(|source| BackupError::ObjectStore {
            action: "set up the client of".to_owned(),
            location: location.clone(),
            source,
        })?;
        Ok(S3 {
            name: config.name.clone(),
            store: Arc::new(store),
            prefix: config.prefix.clone(),
            location,
            runtime,
        })
    }

    /// `s3://bucket/prefix`.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn key(&self, name: &str) -> Key {
        Key::from(format!("{}/{name}", self.prefix))
    }

    fn error(&self, action: &str, name: &str) -> impl FnOnce(object_store::Error) -> BackupError {
        let action = action.to_owned();
        let location = format!("{}/{name}", self.location);
        move |source| BackupError::ObjectStore {
            action,
            location,
            source,
        }
    }

    /// Runs `future` to its end, or until `cancel` fires.
    fn block<T>(
        &self,
        cancel: Option<&CancellationToken>,
        future: impl Future<Output = Result<T, BackupError>>,
    ) -> Result<T, BackupError> {
        self.runtime.block_on(async {
            match cancel {
                Some(cancel) => tokio::select! {
                    result = future => result,
                    () = cancel.cancelled() => Err(BackupError::Cancelled),
                },
                None => future.await,
            }
        })
    }

    /// Streams the local `file` up as the object `name`, in parts; a failed or cancelled
    /// upload is aborted, so no part is left for the bucket to keep. Returns the bytes sent.
    pub fn upload(
        &self,
        file: &Path,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<u64, BackupError> {
        let mut source = File::open(file).map_err(BackupError::io("open", file))?;
        let key = self.key(name);
        let upload = self.block(Some(cancel), async {
            self.store
                .put_multipart(&key)
                .await
                .map_err(self.error("start an upload to", name))
        })?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        // The writer gathers reads into parts; a part's worth of buffer here would only double
        // the memory an upload holds.
        let mut buffer = vec![0u8; publish::IO_BUFFER];
        let mut sent = 0u64;
        let streamed: Result<(), BackupError> = (|| loop {
            let read = match source.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(read) => read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(BackupError::io("read", file)(err)),
            };
            self.block(Some(cancel), async {
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(self.error("upload a part to", name))
            })?;
            writer.write(&buffer[..read]);
            sent += read as u64;
        })();
        match streamed {
            Ok(()) => self.block(Some(cancel), async {
                writer
                    .finish()
                    .await
                    .map_err(self.error("complete the upload to", name))
            })?,
            Err(err) => {
                // Cancelled or not, the parts sent so far must not stay in the bucket.
                let aborted = self.runtime.block_on(writer.abort());
                if let Err(abort) = aborted {
                    tracing::warn!(destination = %self.name, object = %name, error = %crate::collect::ErrorChain(&abort), "Cannot abort the upload; the bucket keeps its parts until a lifecycle rule removes them.");
                }
                return Err(err);
            }
        };
        Ok(sent)
    }

    /// Reads the stored object `name` in full, handing each piece to `sink`; returns its
    /// SHA-256 and size.
    fn read_through(
        &self,
        name: &str,
        cancel: &CancellationToken,
        mut sink: impl FnMut(&[u8]) -> Result<(), BackupError>,
    ) -> Result<(String, u64), BackupError> {
        self.block(Some(cancel), async {
            let got = self
                .store
                .get(&self.key(name))
                .await
                .map_err(self.error("read", name))?;
            let mut stream = got.into_stream();
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(self.error("read", name))?;
                hasher.update(&chunk);
                sink(&chunk)?;
                size += chunk.len() as u64;
            }
            Ok((hex::encode(hasher.finalize()), size))
        })
    }

    /// The SHA-256 and size of the stored object `name`, read back in full.
    pub fn hash(
        &self,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<(String, u64), BackupError> {
        self.read_through(name, cancel, |_| Ok(()))
    }

    /// Downloads the object `name` into a temporary file in `dir` (removed when dropped),
    /// hashing it on the way; returns the file, its SHA-256 and size.
    pub fn download(
        &self,
        name: &str,
        dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<(publish::Staged, String, u64), BackupError> {
        let mut staged = publish::Staged::create(dir, &format!("{name}.download"))
            .map_err(BackupError::io("create a file in", dir))?;
        let path = staged.path().to_owned();
        let file = staged.file().map_err(BackupError::io("open", &path))?;
        let (sha256, size) = self.read_through(name, cancel, |chunk| {
            std::io::Write::write_all(file, chunk).map_err(BackupError::io("write", &path))
        })?;
        staged.close_unsynced();
        Ok((staged, sha256, size))
    }

    /// Deletes the object `name`; one already gone is fine.
    pub fn remove(&self, name: &str) -> Result<(), BackupError> {
        self.block(None, async {
            match self.store.delete(&self.key(name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(err) => Err(self.error("delete", name)(err)),
            }
        })
    }

    /// The names of the objects under the prefix (one level: the job's own).
    fn names(&self) -> Result<Vec<String>, BackupError> {
        let prefix = Key::from(self.prefix.as_str());
        self.block(None, async {
            let mut names = Vec::new();
            let mut listing = self.store.list(Some(&prefix));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(self.error("list", ""))?;
                if let Some(name) = meta
                    .location
                    .as_ref()
                    .strip_prefix(&format!("{}/", self.prefix))
                    .filter(|name| !name.contains('/'))
                {
                    names.push(name.to_owned());
                }
            }
            Ok(names)
        })
    }
}

impl S3 {
    /// What [`Destination::scan`] finds, but a bucket that cannot be listed is an error rather
    /// than an empty destination.
    ///
    /// # Errors
    /// When the objects under the prefix cannot be listed.
    pub fn read(&self, job: &str, extensions: &[&str]) -> Result<Scan, BackupError> {
        let mut scan = Scan::default();
        let names = self.names()?;
        for name in names.iter().filter(|n| n.ends_with(MANIFEST_SUFFIX)) {
            let bytes = self.block(None, async {
                let got = self
                    .store
                    .get(&self.key(name))
                    .await
                    .map_err(self.error("read", name))?;
                got.bytes().await.map_err(self.error("read", name))
            });
            let parsed = bytes
                .map_err(|err| crate::collect::ErrorChain(&err).to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<Manifest>(&bytes).map_err(|err| err.to_string())
                });
            let at = format!("{}/{name}", self.location);
            match parsed {
                Ok(manifest) => match manifest::check(&manifest, name, job, extensions) {
                    Err(problem) => scan.problems.push(format!("{at}: {problem}")),
                    Ok(()) if !names.contains(&manifest.file) => scan.problems.push(format!(
                        "{at}: its backup object `{}` is missing",
                        manifest.file
                    )),
                    Ok(()) => scan.manifests.push(manifest),
                },
                Err(err) => scan
                    .problems
                    .push(format!("{at}: unreadable manifest: {err}")),
            }
        }
        manifest::sort(&mut scan.manifests);
        Ok(scan)
    }
}

impl Destination for S3 {
    fn scan(&self, job: &str, extensions: &[&str]) -> Scan {
        self.read(job, extensions).unwrap_or_else(|err| Scan {
            manifests: Vec::new(),
            problems: vec![crate::collect::ErrorChain(&err).to_string()],
        })
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let name = manifest.name();
        let json = manifest
            .to_json()
            .map_err(BackupError::io("encode", Path::new(&name)))?;
        // One PUT: the object appears whole or not at all.
        self.block(None, async {
            self.store
                .put(&self.key(&name), PutPayload::from(json))
                .await
                .map(|_| ())
                .map_err(self.error("write", &name))
        })
    }

    fn delete(&self, manifests: &[&Manifest]) -> Result<(), BackupError> {
        for manifest in manifests {
            self.remove(&manifest.name())?;
            self.remove(&manifest.file)?;
        }
        Ok(())
    }

    fn remove_leftovers(&self, extensions: &[&str]) -> Vec<String> {
        let Ok(names) = self.names() else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for name in &names {
            let orphan = manifest::is_orphan(name, extensions, |m| names.iter().any(|n| n == m));
            if (orphan || name.starts_with(publish::TEMP_PREFIX)) && self.remove(name).is_ok() {
                removed.push(name.clone());
            }
        }
        removed
    }
}
