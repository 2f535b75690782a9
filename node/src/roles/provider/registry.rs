//! Registry calls through the outbox: apps, data types and their schemas.

use super::*;

impl Provider {
    /// Submits a call through the outbox and waits until it is mined; returns its block.
    pub(super) async fn transact(
        &self,
        id: String,
        to: Address,
        data: Vec<u8>,
        label: String,
    ) -> Result<u64, ProviderError> {
        let call = Call { to, data: data.into(), value: U256::ZERO, label };
        Ok(self.services().transact(&id, call).await?)
    }

    /// Registers an app owned by this node.
    pub async fn register_app(&self, name: &str) -> Result<(B256, String), ProviderError> {
        if name.is_empty() || name.len() > 64 {
            return Err(ProviderError::Invalid("app names are 1 to 64 bytes".into()));
        }
        let registry = self.services().deployment.address("AppRegistry")?;
        let id = format!("app:register:{name}");
        let data = AppRegistry::registerCall { name: name.to_owned() }.abi_encode();
        self.transact(id.clone(), registry, data, format!("register app {name}")).await?;
        Ok((keccak256(name.as_bytes()), id))
    }

    /// Lets another node address ingest and register bundles for an app this node owns (or
    /// withdraws that); waits until mined and indexed.
    pub async fn authorize_node(&self, app: B256, node: Address, authorized: bool) -> Result<String, ProviderError> {
        let services = self.services();
        let row = services
            .state
            .app(app)?
            .filter(|a| !a.retired)
            .ok_or_else(|| ProviderError::NotFound(format!("app {app} is not registered (or not indexed yet)")))?;
        if row.owner != self.address() {
            return Err(ProviderError::Refused(format!(
                "app {app} belongs to {}; only its owner's node can authorize others",
                row.owner
            )));
        }
        let registry = services.deployment.address("AppRegistry")?;
        // Setting the same value twice is harmless on chain; the block keeps ids of later changes apart.
        let id = format!("app:authorize:{app}:{node}:{authorized}:{}", services.indexer.progress().indexed);
        let data = AppRegistry::setAuthorizedCall { appId: app, account: node, authorized }.abi_encode();
        let label = format!("{} {node} for app {app}", if authorized { "authorize" } else { "deauthorize" });
        self.transact(id.clone(), registry, data, label).await?;
        Ok(id)
    }

    /// Registers a data type with its JSON Schema.
    pub async fn register_data_type(
        &self,
        name: &str,
        schema_json: &str,
    ) -> Result<(B256, B256, String), ProviderError> {
        let schema_hash = self.store_schema(schema_json)?;
        let registry = self.services().deployment.address("DataTypeRegistry")?;
        let id = format!("datatype:register:{name}");
        let data = DataTypeRegistry::registerCall { name: name.to_owned(), schemaHash: schema_hash }.abi_encode();
        self.transact(id.clone(), registry, data, format!("register data type {name}")).await?;
        Ok((keccak256(name.as_bytes()), schema_hash, id))
    }

    /// Keeps a schema (after checking it compiles); returns its hash.
    pub fn store_schema(&self, schema_json: &str) -> Result<B256, ProviderError> {
        let schema: serde_json::Value = serde_json::from_str(schema_json)
            .map_err(|e| ProviderError::Invalid(format!("the schema is not JSON: {e}")))?;
        jsonschema::validator_for(&schema)
            .map_err(|e| ProviderError::Invalid(format!("not a valid JSON Schema: {e}")))?;
        crate::roles::schemas::Schemas::new(self.inner.backend.clone()).keep(schema_json)
    }

    /// Fetches the schema of a data type registered elsewhere from the network (by its on-chain
    /// hash) and keeps it.
    pub async fn fetch_schema(&self, data_type: B256) -> Result<B256, ProviderError> {
        let (_, schema_json) =
            crate::roles::schemas::Schemas::new(self.inner.backend.clone()).of_data_type(data_type).await?;
        self.add_schema(data_type, &schema_json)
    }

    /// Keeps the schema of a data type registered elsewhere, checked against its on-chain hash.
    pub fn add_schema(&self, data_type: B256, schema_json: &str) -> Result<B256, ProviderError> {
        let row = self.services().state.data_type(data_type)?.ok_or_else(|| {
            ProviderError::NotFound(format!("data type {data_type} is not registered (or not indexed yet)"))
        })?;
        let hash = keccak256(schema_json.as_bytes());
        if hash != row.schema_hash {
            return Err(ProviderError::Invalid(format!(
                "this schema hashes to {hash}, but data type {data_type} has schema hash {} on chain",
                row.schema_hash
            )));
        }
        self.store_schema(schema_json)
    }
}
