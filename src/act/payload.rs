//! Alertmanager's webhook payload (version "4"), decoded leniently and checked strictly.
//!
//! Unknown fields are ignored: fields appear across Alertmanager versions
//! (`notification_reason`, `routeLabels`). What warden uses is checked: the version, each
//! alert's status, and bounded lengths for what becomes a key in the store.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The longest fingerprint or `startsAt` accepted: Alertmanager's are 16 hex digits and an
/// RFC 3339 time; anything far longer is not from Alertmanager.
const MAX_KEY_FIELD: usize = 64;
/// The longest label name or value accepted; Prometheus itself has no limit, but a label value
/// of kilobytes in an alert is a mistake or an attack.
const MAX_LABEL_VALUE: usize = 4096;
/// The most labels one alert may carry.
const MAX_LABELS: usize = 128;

/// A webhook notification.
#[derive(Debug, Clone, Deserialize)]
pub struct Payload {
    /// Always "4".
    pub version: String,
    /// The receiver's name, regexp-escaped by Alertmanager.
    #[serde(default)]
    pub receiver: String,
    /// `firing` when any alert fires.
    #[serde(default)]
    pub status: String,
    /// Every alert of the group, firing and resolved.
    pub alerts: Vec<Alert>,
    /// The group's key (opaque).
    #[serde(default, rename = "groupKey")]
    pub group_key: String,
    /// Alerts left out because of the receiver's `max_alerts`.
    #[serde(default, rename = "truncatedAlerts")]
    pub truncated_alerts: u64,
}

/// One alert.
#[derive(Debug, Clone, Deserialize)]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When it started firing (RFC 3339); with the fingerprint, it names one firing.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// Alertmanager's hash of the labels (since 0.19); computed from the labels when absent.
    #[serde(default)]
    pub fingerprint: String,
}

/// Why a payload was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON, or not the payload's shape.
    #[error("the body is not an Alertmanager webhook payload: {0}")]
    Malformed(String),
    /// Another version of the payload.
    #[error("version is `{0}`; warden understands Alertmanager's webhook version \"4\"")]
    Version(String),
    /// A field of one alert is wrong.
    #[error("alerts[{index}].{field}: {reason}")]
    Alert {
        /// The alert's position.
        index: usize,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Payload {
    /// Decodes and checks a body.
    ///
    /// # Errors
    /// [`PayloadError`] naming what is wrong.
    pub fn try_from_slice(body: &[u8]) -> Result<Payload, PayloadError> {
        let mut payload: Payload = serde_json::from_slice(body).map_err(|err| {
            // serde_json's messages name the position, not the content.
            PayloadError::Malformed(err.to_string())
        })?;
        if payload.version != "4" {
            let mut version = payload.version.clone();
            version.truncate(16);
            return Err(PayloadError::Version(version.escape_debug().to_string()));
        }
        for (index, alert) in payload.alerts.iter_mut().enumerate() {
            let bad = |field, reason: &str| PayloadError::Alert {
                index,
                field,
                reason: reason.to_owned(),
            };
            if alert.status != "firing" && alert.status != "resolved" {
                return Err(bad("status", "must be firing or resolved"));
            }
            if alert.starts_at.is_empty() || alert.starts_at.len() > MAX_KEY_FIELD {
                return Err(bad("startsAt", "must be a time of at most 64 characters"));
            }
            if alert.fingerprint.len() > MAX_KEY_FIELD {
                return Err(bad("fingerprint", "is longer than 64 characters"));
            }
            if alert.labels.len() > MAX_LABELS {
                return Err(bad("labels", "has more than 128 labels"));
            }
            if alert
                .labels
                .iter()
                .any(|(k, v)| k.len() > MAX_LABEL_VALUE || v.len() > MAX_LABEL_VALUE)
            {
                return Err(bad("labels", "has a name or value longer than 4096 bytes"));
            }
            if alert.fingerprint.is_empty() {
                alert.fingerprint = fingerprint_of(&alert.labels);
            }
        }
        Ok(payload)
    }

    /// The receiver's name without Alertmanager's regexp escaping.
    pub fn receiver_name(&self) -> String {
        let mut out = String::with_capacity(self.receiver.len());
        let mut chars = self.receiver.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// A stable hash of a label set, for alerts from Alertmanagers older than 0.19.
fn fingerprint_of(labels: &BTreeMap<String, String>) -> String {
    hex::encode(&label_set_hash(labels)[..8])
}

/// SHA-256 of a label set (names and values separated by a byte that UTF-8 never uses).
pub fn label_set_hash(labels: &BTreeMap<String, String>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for (k, v) in labels {
        hasher.update(k.as_bytes());
        hasher.update([0xff]);
        hasher.update(v.as_bytes());
        hasher.update([0xff]);
    }
    hasher.finalize().into()
}

/// Label names whose values are not written to the audit log.
fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["pass", "secret", "token", "key", "auth", "cred"]
        .iter()
        .any(|word| lower.contains(word))
}

/// A label set with the values of secret-looking labels replaced.
pub fn redacted(labels: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    labels
        .iter()
        .map(|(k, v)| {
            let value = if is_secret_name(k) {
                "[redacted]"
            } else {
                v.as_str()
            };
            (k.as_str(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
      "receiver": "web\\.hook", "status": "firing",
      "alerts": [
        {"status": "firing", "labels": {"alertname": "PgIdle", "instance": "db1:9187"},
         "annotations": {"summary": "s"}, "startsAt": "2026-08-22T09:14:05.123456789Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://p", "fingerprint": "6fb1c3b2a1d0e9f4"},
        {"status": "resolved", "labels": {"alertname": "PgIdle", "instance": "db2:9187"},
         "startsAt": "2026-08-22T08:40:05Z", "endsAt": "2026-08-22T09:20:05Z"}
      ],
      "notification_reason": "some alerts resolved", "routeLabels": {},
      "groupLabels": {"alertname": "PgIdle"}, "commonLabels": {}, "commonAnnotations": {},
      "externalURL": "http://am:9093", "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0
    }"#;

    #[test]
    fn decodes_alertmanager_s_example_with_unknown_fields() {
        let payload = Payload::try_from_slice(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(payload.receiver_name(), "web.hook");
        assert_eq!(payload.alerts.len(), 2);
        assert_eq!(payload.alerts[0].fingerprint, "6fb1c3b2a1d0e9f4");
        assert_eq!(payload.alerts[1].fingerprint.len(), 16, "computed");
    }

    #[test]
    fn refuses_what_it_cannot_use_and_names_it() {
        let wrong_version = EXAMPLE.replace(r#""version": "4""#, r#""version": "5""#);
        assert!(matches!(
            Payload::try_from_slice(wrong_version.as_bytes()),
            Err(PayloadError::Version(v)) if v == "5"
        ));
        let bad_status = EXAMPLE.replace(r#""status": "resolved""#, r#""status": "gone""#);
        assert_eq!(
            Payload::try_from_slice(bad_status.as_bytes())
                .unwrap_err()
                .to_string(),
            "alerts[1].status: must be firing or resolved"
        );
        assert!(matches!(
            Payload::try_from_slice(b"{not json"),
            Err(PayloadError::Malformed(_))
        ));
        assert!(matches!(
            Payload::try_from_slice(b"{\"version\": \"4\"}"),
            Err(PayloadError::Malformed(_))
        ));
    }

    #[test]
    fn secret_labels_are_redacted() {
        let labels: BTreeMap<String, String> = [("api_token", "abc"), ("instance", "db1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let r = redacted(&labels);
        assert_eq!(r["api_token"], "[redacted]");
        assert_eq!(r["instance"], "db1");
    }
}
