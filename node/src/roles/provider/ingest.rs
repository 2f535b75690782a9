//! Ingestion: schema and consent checks, sealing under the storage key, fsynced batches.

use super::*;

/// Why a record was not accepted: refused (a verdict for that record), or the store failed (the
/// whole call fails).
pub(super) enum CheckError {
    Refused(Refusal, String),
    Store(crate::store::StoreError),
}

impl From<(Refusal, String)> for CheckError {
    fn from((refusal, message): (Refusal, String)) -> Self {
        CheckError::Refused(refusal, message)
    }
}

impl From<crate::store::StoreError> for CheckError {
    fn from(e: crate::store::StoreError) -> Self {
        CheckError::Store(e)
    }
}

impl Provider {
    pub(super) fn validator(&self, data_type: B256) -> Result<Arc<jsonschema::Validator>, CheckError> {
        if let Some(v) = self.inner.validators.read().expect("validators lock").get(&data_type) {
            return Ok(v.clone());
        }
        let services = self.services();
        let row = services
            .state
            .data_type(data_type)?
            .filter(|row| !row.retired)
            .ok_or_else(|| (Refusal::UnknownDataType, format!("data type {data_type} is not registered")))?;
        let schema = self.inner.backend.store.get_raw(cf::SCHEMAS, row.schema_hash.as_slice())?.ok_or_else(|| {
            (
                Refusal::UnknownDataType,
                format!("this node does not have the schema of data type {data_type}; add it with AddSchema"),
            )
        })?;
        let schema: serde_json::Value =
            serde_json::from_slice(&schema).map_err(|e| (Refusal::UnknownDataType, e.to_string()))?;
        let validator =
            Arc::new(jsonschema::validator_for(&schema).map_err(|e| (Refusal::UnknownDataType, e.to_string()))?);
        self.inner.validators.write().expect("validators lock").insert(data_type, validator.clone());
        Ok(validator)
    }

    /// Checks one record; on success returns its store key and sealed value.
    pub(super) fn check(&self, record: &IncomingRecord) -> Result<(Vec<u8>, Vec<u8>), CheckError> {
        let services = self.services();
        let app = services
            .state
            .app(record.app)?
            .filter(|app| !app.retired)
            .ok_or_else(|| (Refusal::NotAuthorized, format!("app {} is not registered", record.app)))?;
        let me = self.address();
        if app.owner != me && !app.authorized.contains(&me) {
            return Err(CheckError::Refused(
                Refusal::NotAuthorized,
                format!("this node ({me}) is not authorized for app {}", record.app),
            ));
        }
        let validator = self.validator(record.data_type)?;
        let payload: serde_json::Value = serde_json::from_str(&record.payload_json)
            .map_err(|e| (Refusal::Malformed, format!("payload is not JSON: {e}")))?;
        if let Some(error) = validator.iter_errors(&payload).next() {
            return Err(CheckError::Refused(Refusal::Schema, format!("{error} at {}", error.instance_path)));
        }
        let consent = services.state.consent(record.user, record.app, actions::COLLECT, record.data_type)?;
        if !consent.history.last().is_some_and(|(_, allowed)| *allowed) {
            return Err(CheckError::Refused(
                Refusal::NoConsent,
                format!("user {} has not allowed collection for this app and data type", record.user),
            ));
        }
        let canonical = Record {
            user_id: record.user,
            data_type: record.data_type,
            collected_at_ms: record.collected_at_ms,
            payload: record.payload_json.as_bytes().to_vec(),
        }
        .encode()
        .map_err(|e| (Refusal::Malformed, e.to_string()))?;
        let mut key = Vec::with_capacity(96);
        key.extend_from_slice(record.app.as_slice());
        key.extend_from_slice(record.data_type.as_slice());
        key.extend_from_slice(keccak256(&canonical).as_slice());
        let mut value = record.user.to_vec();
        value.extend_from_slice(&stream::seal(&self.inner.storage_key, &canonical));
        Ok((key, value))
    }

    /// Ingests a batch: every record gets a verdict; accepted ones are durable when this returns.
    pub fn ingest(&self, records: &[IncomingRecord]) -> Result<Vec<Verdict>, ProviderError> {
        let store = &self.inner.backend.store;
        let mut batch = store.batch();
        let mut verdicts = Vec::with_capacity(records.len());
        // Checking and sealing are CPU work per record: spread them over the cores.
        let checked: Vec<_> = {
            use rayon::prelude::*;
            records.par_iter().map(|record| self.check(record)).collect()
        };
        for checked in checked {
            match checked {
                Ok((key, value)) => {
                    if store.get_raw(cf::RECORDS, &key)?.is_some() {
                        verdicts.push(Verdict::Duplicate);
                    } else {
                        batch.put_raw(cf::RECORDS, &key, &value);
                        verdicts.push(Verdict::Accepted);
                    }
                }
                Err(CheckError::Refused(refusal, message)) => verdicts.push(Verdict::Refused(refusal, message)),
                Err(CheckError::Store(e)) => return Err(e.into()),
            }
        }
        if !batch.is_empty() {
            store.write(batch, Durability::Sync)?;
            let mut pending = self.inner.pending.lock().expect("pending lock");
            for (record, verdict) in records.iter().zip(&verdicts) {
                if *verdict == Verdict::Accepted {
                    let now = std::time::Instant::now();
                    pending.entry((record.app, record.data_type)).or_insert(Pending { count: 0, since: now }).count +=
                        1;
                }
            }
        }
        Ok(verdicts)
    }

    /// Records waiting for a bundle, for an app and data type.
    pub fn pending(&self, app: B256, data_type: B256) -> Result<u64, ProviderError> {
        let prefix = [app.as_slice(), data_type.as_slice()].concat();
        Ok(self.inner.backend.store.scan_prefix(cf::RECORDS, &prefix).count() as u64)
    }
}
