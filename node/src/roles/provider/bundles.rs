//! Bundles: sealing (on request or by policy), derived bundles, registration, announcement, serving.

use super::*;

impl Provider {
    /// Seals the pending records of `app` / `data_type` into a registered, announced bundle.
    pub async fn seal(&self, app: B256, data_type: B256) -> Result<ProvidedBundle, ProviderError> {
        let _sealing = self.inner.sealing.lock().await;
        let this = self.clone();
        let bundle = tokio::task::spawn_blocking(move || this.write_bundle(app, data_type)).await??;
        // Records that arrived while sealing stay pending.
        let left = self.pending(app, data_type)?;
        self.set_pending(app, data_type, left);
        self.register(bundle).await
    }

    pub(super) fn set_pending(&self, app: B256, data_type: B256, count: u64) {
        let mut pending = self.inner.pending.lock().expect("pending lock");
        match count {
            0 => pending.remove(&(app, data_type)),
            count => pending.insert((app, data_type), Pending { count, since: std::time::Instant::now() }),
        };
    }

    /// Seals pending records on its own when a group reaches the policy's record count or age.
    pub async fn run_sealing(self, policy: SealPolicy, cancel: tokio_util::sync::CancellationToken) {
        if policy.max_records == 0 && policy.max_age.is_zero() {
            return;
        }
        loop {
            // Time is the point: groups come due by age, checked twice a second.
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            }
            let due: Vec<(B256, B256)> = self
                .inner
                .pending
                .lock()
                .expect("pending lock")
                .iter()
                .filter(|(_, p)| {
                    (policy.max_records > 0 && p.count >= policy.max_records)
                        || (!policy.max_age.is_zero() && p.since.elapsed() >= policy.max_age)
                })
                .map(|(group, _)| *group)
                .collect();
            for (app, data_type) in due {
                match self.seal(app, data_type).await {
                    Ok(bundle) => {
                        info!(target: "provider", bundle = %bundle.bundle_id, records = bundle.record_count, "sealed by policy")
                    }
                    Err(e) => {
                        warn!(target: "provider", %app, %data_type, error = %e, "sealing by policy failed; retrying");
                        // Do not retry at once: count the group from now.
                        let left = self.pending(app, data_type).unwrap_or_default();
                        self.set_pending(app, data_type, left);
                    }
                }
            }
        }
    }

    pub(super) fn write_bundle(&self, app: B256, data_type: B256) -> Result<ProvidedBundle, ProviderError> {
        let store = &self.inner.backend.store;
        let prefix = [app.as_slice(), data_type.as_slice()].concat();
        let mut keys = Vec::new();
        let records = store.scan_prefix(cf::RECORDS, &prefix).map(|row| {
            let (key, value) = row?;
            let user = B256::from_slice(&value[..32]);
            let canonical = stream::open(&self.inner.storage_key, &value[32..]).map_err(|e| {
                RoleError::Crypto(format!("a stored record does not open with the storage key: {e}").into())
            })?;
            keys.push(key);
            Ok((user, canonical.to_vec()))
        });
        let bundle = self
            .write_body(app, data_type, records)?
            .ok_or_else(|| ProviderError::NotFound("no pending records for this app and data type".into()))?;
        // One atomic write: the bundle exists and its records are no longer pending.
        let mut batch = store.batch();
        batch.put(cf::PROVIDED, bundle.bundle_id.as_slice(), &bundle);
        for key in &keys {
            batch.delete(cf::RECORDS, key);
        }
        store.write(batch, Durability::Sync)?;
        info!(target: "provider", bundle_id = %bundle.bundle_id, records = bundle.record_count, size = bundle.size, "bundle sealed");
        Ok(bundle)
    }

    /// Writes a bundle body from (user, canonical record) pairs under a fresh key; `None` when
    /// there are no records. The bundle is not yet recorded in the store.
    pub(super) fn write_body(
        &self,
        app: B256,
        data_type: B256,
        records: impl Iterator<Item = Result<(B256, Vec<u8>), ProviderError>>,
    ) -> Result<Option<ProvidedBundle>, ProviderError> {
        let dek = Dek::generate();
        let tmp = self
            .inner
            .bundles_dir
            .join(format!("sealing-{}.tmp", alloy::primitives::hex::encode(rand::random::<[u8; 8]>())));
        let mut body = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let (mut users, mut leaves) = (Vec::new(), Vec::new());
        let mut size = 0u64;
        let written = (|| {
            for record in records {
                let (user, canonical) = record?;
                let sealed = stream::seal(&dek, &canonical);
                size += crate::roles::body::write_entry(&mut body, user, &sealed)?;
                leaves.push(crate::roles::body::leaf(user, leaves.len() as u64, &sealed));
                users.push(user);
            }
            Ok::<_, ProviderError>(())
        })();
        if written.is_err() || leaves.is_empty() {
            drop(body);
            let _ = std::fs::remove_file(&tmp);
            return written.map(|()| None);
        }
        let file = body.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let merkle_root = MerkleTree::new(&leaves)?.root();
        let manifest = ChunkManifest::compute(std::fs::File::open(&tmp)?, chunk_size_for(size))?;
        let ciphertext_hash = manifest.commitment();
        let record_count = leaves.len() as u64;
        let bundle_id =
            keccak256((self.address(), app, data_type, merkle_root, record_count, ciphertext_hash, size).abi_encode());
        let path = self.inner.bundles_dir.join(format!("{bundle_id}.bin"));
        std::fs::rename(&tmp, &path)?;
        // The rename is durable only once the directory is synced; the caller deletes the pending
        // records right after, so a crash must not find the records gone and the file missing.
        std::fs::File::open(&self.inner.bundles_dir).and_then(|dir| dir.sync_all())?;
        Ok(Some(ProvidedBundle {
            bundle_id,
            app,
            data_type,
            merkle_root,
            record_count,
            size,
            ciphertext_hash,
            chunk_size: manifest.chunk_size,
            chunk_hashes: manifest.concatenated().into(),
            wrapped_dek: wrap::wrap_dek(&self.inner.key.public_key_uncompressed(), &dek)?,
            users,
            file: path,
            registered_block: None,
            parent: None,
            excluded: Vec::new(),
        }))
    }

    /// The bundle `parent` without the records of `excluded` users: new key, new root, its own
    /// registration. Made once per parent and excluded set, then reused.
    pub(super) async fn derive(
        &self,
        parent: &ProvidedBundle,
        excluded: Vec<B256>,
    ) -> Result<ProvidedBundle, ProviderError> {
        let _sealing = self.inner.sealing.lock().await;
        let existing =
            self.bundles()?.into_iter().find(|b| b.parent == Some(parent.bundle_id) && b.excluded == excluded);
        let bundle = match existing {
            Some(bundle) if bundle.registered_block.is_some() => return Ok(bundle),
            Some(bundle) => bundle,
            None => {
                let this = self.clone();
                let parent = parent.clone();
                tokio::task::spawn_blocking(move || {
                    let dek =
                        wrap::unwrap_dek(this.inner.key.secret_bytes(), &parent.wrapped_dek)?;
                    let mut input = std::io::BufReader::new(std::fs::File::open(&parent.file)?);
                    let records = std::iter::from_fn(|| match crate::roles::body::read_entry(&mut input) {
                        Ok(Some(entry)) => Some(Ok(entry)),
                        Ok(None) => None,
                        Err(e) => Some(Err(RoleError::from(e))),
                    })
                    .filter(|entry| !matches!(entry, Ok((user, _)) if excluded.contains(user)))
                    .map(|entry| {
                        let (user, sealed) = entry?;
                        Ok((user, stream::open(&dek, &sealed)?.to_vec()))
                    });
                    let mut bundle = this.write_body(parent.app, parent.data_type, records)?.ok_or_else(|| {
                        ProviderError::Invalid(format!(
                            "every user of bundle {} withdrew exchange consent; nothing can be delivered",
                            parent.bundle_id
                        ))
                    })?;
                    bundle.parent = Some(parent.bundle_id);
                    bundle.excluded = excluded;
                    this.inner
                        .backend
                        .store
                        .put(cf::PROVIDED, bundle.bundle_id.as_slice(), &bundle, Durability::Sync)?;
                    info!(target: "provider", parent = %parent.bundle_id, bundle = %bundle.bundle_id, records = bundle.record_count, "derived bundle sealed");
                    Ok::<_, ProviderError>(bundle)
                })
                .await??
            }
        };
        self.register(bundle).await
    }

    /// Registers a sealed bundle on DataRegistry (idempotent), then serves and announces it.
    pub(super) async fn register(&self, mut bundle: ProvidedBundle) -> Result<ProvidedBundle, ProviderError> {
        let registry = self.services().deployment.address("DataRegistry")?;
        let data = DataRegistry::registerBundleCall {
            appId: bundle.app,
            dataTypeId: bundle.data_type,
            merkleRoot: bundle.merkle_root,
            recordCount: bundle.record_count,
            ciphertextHash: bundle.ciphertext_hash,
            size: bundle.size,
            locator: String::new(),
        }
        .abi_encode();
        let id = format!("bundle:register:{}", bundle.bundle_id);
        let block = self.transact(id, registry, data, format!("register bundle {}", bundle.bundle_id)).await?;
        bundle.registered_block = Some(block);
        self.inner.backend.store.put(cf::PROVIDED, bundle.bundle_id.as_slice(), &bundle, Durability::Sync)?;
        self.serve_bundle(&bundle);
        if bundle.parent.is_none() {
            self.announce(&bundle).await;
        }
        Ok(bundle)
    }

    /// Registers bundles sealed before a crash and announces every registered one.
    pub async fn resume(&self) {
        let Ok(bundles) = self.bundles() else { return };
        for bundle in bundles {
            match bundle.registered_block {
                Some(_) if bundle.parent.is_some() => {}
                Some(_) => self.announce(&bundle).await,
                None => {
                    if let Err(e) = self.register(bundle).await {
                        warn!(target: "provider", error = %e, "cannot register a sealed bundle");
                    }
                }
            }
        }
    }

    pub(super) async fn announce(&self, bundle: &ProvidedBundle) {
        let Some(block) = bundle.registered_block else { return };
        let (network, services) = (&self.inner.backend.network, &self.inner.backend.services);
        let statement = BundleStatement {
            bundle_id: bundle.bundle_id,
            app_id: bundle.app,
            data_type_id: bundle.data_type,
            record_count: bundle.record_count,
            size: bundle.size,
            price_hint: U256::ZERO,
            price_token: Address::ZERO,
            registered_block: block,
        };
        let announcement =
            p2p::gossip::sign_bundle_announcement(&self.inner.key, services.deployment.chain_id, &statement);
        network.provide(bundle.bundle_id).await;
        if let Err(e) = network.announce(&announcement).await {
            // No subscribed peer yet; the DHT record still says who holds it.
            info!(target: "provider", bundle = %bundle.bundle_id, error = %e, "announcement not published");
        }
    }

    pub(super) fn serve_bundle(&self, bundle: &ProvidedBundle) {
        if bundle.registered_block.is_none() {
            return;
        }
        let Ok(file) = std::fs::File::open(&bundle.file) else {
            warn!(target: "provider", path = %bundle.file.display(), "a provided bundle's file is missing");
            return;
        };
        let size_matches = file.metadata().is_ok_and(|m| m.len() == bundle.size);
        let manifest = match bundle.chunk_hashes.is_empty() {
            // Kept at sealing; the file's size is checked here, every chunk by each downloader.
            false if size_matches => {
                ChunkManifest::from_concatenated(bundle.chunk_size, bundle.size, &bundle.chunk_hashes)
                    .map_err(|e| std::io::Error::other(e.to_string()))
            }
            _ => ChunkManifest::compute(file, bundle.chunk_size),
        };
        match manifest {
            Ok(manifest) if manifest.commitment() == bundle.ciphertext_hash => {
                let served = ServedBundle { path: bundle.file.clone(), manifest: Arc::new(manifest) };
                self.inner.served.write().expect("served lock").insert(bundle.bundle_id, served);
            }
            _ => {
                warn!(target: "provider", bundle = %bundle.bundle_id, "a provided bundle's file does not match its registration")
            }
        }
    }

    /// Bundles this node sealed.
    pub fn bundles(&self) -> Result<Vec<ProvidedBundle>, ProviderError> {
        self.inner
            .backend
            .store
            .scan_prefix(cf::PROVIDED, &[])
            .map(|row| {
                let (key, value) = row?;
                crate::store::decode(cf::PROVIDED, &key, &value).map_err(RoleError::from)
            })
            .collect()
    }

    /// Whether `consumer` holds an order that covers `bundle` (kept by the delivery loop).
    pub(super) fn has_ordered(&self, consumer: Address, bundle: B256) -> bool {
        self.inner.ordered.read().expect("ordered lock").contains(&(consumer, bundle))
    }
}
