//! A small airbloc network for end-to-end tests and benchmarks: a real anvil with the
//! contracts, a bootnode, a provider and a consumer `airblocd` process (and, when asked, an
//! identity keeper registered as a controller), driven over gRPC.

#![allow(dead_code)]

use super::support::NodeProcess;
use airbloc_node::{
    chain::contracts::{Consents, ControllerRegistry, Users, actions},
    mined,
    test_utils::{deploy_local, dev_key, signing_provider, spawn_anvil_with},
};
use airbloc_proto::v1::{
    CatalogRequest, CreateOfferRequest, DownloadRequest, GetOrderRequest, IngestRecord, RegisterAppRequest,
    RegisterDataTypeRequest, SealBundleRequest, StatusRequest, consumer_client::ConsumerClient,
    node_client::NodeClient, provider_client::ProviderClient,
};
use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, U256},
    providers::Provider as _,
    rpc::types::TransactionRequest,
};
use std::{collections::BTreeSet, time::Duration};
use tonic::{codegen::InterceptedService, transport::Channel};

pub(crate) type Authed = InterceptedService<Channel, airbloc_proto::BearerInterceptor>;

pub(crate) fn channel(node: &NodeProcess) -> (Channel, airbloc_proto::BearerInterceptor) {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", node.runtime.grpc_addr)).unwrap().connect_lazy();
    (channel, airbloc_proto::bearer(&node.token()).unwrap())
}

pub(crate) fn node_client(node: &NodeProcess) -> NodeClient<Authed> {
    let (c, a) = channel(node);
    NodeClient::with_interceptor(c, a)
}

pub(crate) const SCHEMA: &str = r#"{"type":"object","required":["steps"],"properties":{"steps":{"type":"integer","minimum":0},"device":{"type":"string"}}}"#;

pub(crate) async fn wait_indexed(node: &NodeProcess, block: u64) {
    let mut client = node_client(node);
    while client.status(StatusRequest {}).await.unwrap().into_inner().indexed_block < block {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A chain with the contracts, a bootnode, a provider and a consumer process (and, when asked,
/// an identity keeper registered as a controller), funded, with an app, a data type and three
/// wallet users (two allow collection and exchange).
pub(crate) struct World {
    pub(crate) anvil: alloy::node_bindings::AnvilInstance,
    pub(crate) governor: alloy::providers::DynProvider,
    pub(crate) deployment: airbloc_node::chain::Deployment,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) _boot: NodeProcess,
    pub(crate) boot_addr: String,
    pub(crate) provider_node: NodeProcess,
    pub(crate) consumer_node: NodeProcess,
    pub(crate) provider: ProviderClient<Authed>,
    pub(crate) consumer: ConsumerClient<Authed>,
    pub(crate) app_id: B256,
    pub(crate) data_type_id: B256,
    pub(crate) users: Vec<B256>,
    pub(crate) keeper_node: Option<NodeProcess>,
}

impl World {
    pub(crate) async fn new() -> Self {
        Self::start(false).await
    }

    pub(crate) async fn start(with_keeper: bool) -> Self {
        let anvil = spawn_anvil_with(&["--block-time", "1"]);
        let (_, governor, deployment) = deploy_local(&anvil, true).await;
        let dir = tempfile::tempdir().unwrap();
        deployment.save(&dir.path().join("deployment.json")).unwrap();
        let rpc = anvil.endpoint();
        let deployment_arg = dir.path().join("deployment.json").display().to_string();
        let boot = NodeProcess::start(
            &dir.path().join("boot"),
            &rpc,
            &["--roles", "bootnode", "--chain.deployment", &deployment_arg],
        );
        let boot_addr = boot.runtime.p2p_addrs[0].clone();
        let keeper_node = match with_keeper {
            true => {
                let keeper = Self::start_node(&dir, &rpc, &boot_addr, "keeper", "keeper");
                let address: Address = keeper.runtime.address.parse().unwrap();
                let tx = TransactionRequest::default().with_to(address).with_value(U256::from(10u128.pow(20)));
                governor.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
                let registry = ControllerRegistry::new(deployment.address("ControllerRegistry").unwrap(), &governor);
                mined!(registry.addController(address));
                Some(keeper)
            }
            false => None,
        };
        let mut world_nodes = Vec::new();
        for (name, role) in [("provider", "provider"), ("consumer", "consumer")] {
            let node = Self::start_node(&dir, &rpc, &boot_addr, name, role);
            let to: Address = node.runtime.address.parse().unwrap();
            let tx = TransactionRequest::default().with_to(to).with_value(U256::from(10u128.pow(20)));
            governor.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
            world_nodes.push(node);
        }
        let consumer_node = world_nodes.pop().unwrap();
        let provider_node = world_nodes.pop().unwrap();
        let (c, a) = channel(&provider_node);
        let mut provider = ProviderClient::with_interceptor(c, a);
        let (c, a) = channel(&consumer_node);
        let consumer = ConsumerClient::with_interceptor(c, a);

        let app_id = B256::from_slice(
            &provider.register_app(RegisterAppRequest { name: "fitness".into() }).await.unwrap().into_inner().app_id,
        );
        let data_type_id = B256::from_slice(
            &provider
                .register_data_type(RegisterDataTypeRequest { name: "daily-steps".into(), schema_json: SCHEMA.into() })
                .await
                .unwrap()
                .into_inner()
                .data_type_id,
        );
        let at = |name| deployment.address(name).unwrap();
        let mut users = Vec::new();
        let mut last_block = 0;
        for (i, allow) in [(5, true), (6, true), (7, false)] {
            let wallet = signing_provider(&anvil, &dev_key(&anvil, i));
            let user = mined!(Users::new(at("Users"), wallet.clone()).create())
                .decoded_log::<Users::UserCreated>()
                .unwrap()
                .userId;
            if allow {
                let consents = [actions::COLLECT, actions::EXCHANGE].map(|action| Consents::ConsentInput {
                    userId: user,
                    appId: app_id,
                    action,
                    dataTypeId: data_type_id,
                    allowed: true,
                });
                last_block =
                    mined!(Consents::new(at("Consents"), wallet).setConsents(consents.to_vec())).block_number.unwrap();
            }
            users.push(user);
        }
        wait_indexed(&provider_node, last_block).await;
        World {
            anvil,
            governor,
            deployment,
            dir,
            _boot: boot,
            boot_addr,
            provider_node,
            consumer_node,
            provider,
            consumer,
            app_id,
            data_type_id,
            users,
            keeper_node,
        }
    }

    pub(crate) fn start_node(
        dir: &tempfile::TempDir,
        rpc: &str,
        boot_addr: &str,
        name: &str,
        role: &str,
    ) -> NodeProcess {
        let deployment_arg = dir.path().join("deployment.json").display().to_string();
        let mut args = vec![
            "--roles".to_owned(),
            role.to_owned(),
            "--chain.deployment".to_owned(),
            deployment_arg,
            "--chain.confirmations".to_owned(),
            "0".to_owned(),
            "--p2p.bootnodes".to_owned(),
            boot_addr.to_owned(),
        ];
        // The provider signs users up through the keeper, when the world has one.
        if role == "provider"
            && let Ok(runtime) = std::fs::read_to_string(dir.path().join("keeper").join("node.json"))
        {
            let runtime: serde_json::Value = serde_json::from_str(&runtime).unwrap();
            args.extend(["--provider.keeper".to_owned(), runtime["address"].as_str().unwrap().to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        NodeProcess::start(&dir.path().join(name), rpc, &args)
    }

    /// Kills a node with SIGKILL and starts it again on the same data dir.
    pub(crate) async fn kill_and_restart(&mut self, which: &str) {
        let rpc = self.anvil.endpoint();
        let node = match which {
            "provider" => &mut self.provider_node,
            _ => &mut self.consumer_node,
        };
        node.signal("KILL");
        node.wait_exit(Duration::from_secs(10));
        *node = Self::start_node(&self.dir, &rpc, &self.boot_addr, which, which);
        let (c, a) = channel(node);
        match which {
            "provider" => self.provider = ProviderClient::with_interceptor(c, a),
            _ => self.consumer = ConsumerClient::with_interceptor(c, a),
        }
    }

    pub(crate) fn record(&self, i: u64) -> IngestRecord {
        IngestRecord {
            app_id: self.app_id.to_vec(),
            data_type_id: self.data_type_id.to_vec(),
            user_id: self.users[(i % 3) as usize].to_vec(),
            collected_at_ms: 1_750_000_000_000 + i,
            payload_json: if i % 13 == 0 {
                format!(r#"{{"steps":"many-{i}"}}"#)
            } else {
                format!(r#"{{"steps":{i},"device":"band-{}"}}"#, i % 5)
            },
            ..Default::default()
        }
    }

    /// Whether record `i` of [`World::record`] is accepted.
    pub(crate) fn accepted(i: u64) -> bool {
        i % 3 != 2 && i % 13 != 0
    }

    pub(crate) async fn seal_and_offer(&mut self, price: U256, delivery_window_secs: u64) -> (Vec<u8>, Vec<u8>) {
        self.seal_and_offer_in(price, delivery_window_secs, "").await
    }

    /// Seals the pending records and offers them priced in `token` (empty for ETH).
    pub(crate) async fn seal_and_offer_in(
        &mut self,
        price: U256,
        delivery_window_secs: u64,
        token: &str,
    ) -> (Vec<u8>, Vec<u8>) {
        let bundle = self
            .provider
            .seal_bundle(SealBundleRequest { app_id: self.app_id.to_vec(), data_type_id: self.data_type_id.to_vec() })
            .await
            .unwrap()
            .into_inner();
        let offer = self
            .provider
            .create_offer(CreateOfferRequest {
                bundle_ids: vec![bundle.bundle_id.clone()],
                price_wei: price.to_string(),
                consumer: String::new(),
                delivery_window_secs,
                dispute_window_secs: 3600,
                expires_in_secs: 3600,
                token: token.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        // The consumer can order once its index has the offer.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let request = CatalogRequest { app_id: self.app_id.to_vec(), ..Default::default() };
            let entries = self.consumer.catalog(request).await.unwrap().into_inner().entries;
            if entries.iter().any(|e| e.offers.iter().any(|o| o.offer_id == offer.offer_id)) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the consumer never indexed the offer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (bundle.bundle_id, offer.offer_id)
    }

    pub(crate) async fn wait_order(
        &mut self,
        order_id: &[u8],
        within: Duration,
        done: impl Fn(&airbloc_proto::v1::OrderInfo) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let info =
                self.consumer.get_order(GetOrderRequest { order_id: order_id.to_vec() }).await.unwrap().into_inner();
            if done(&info) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "order did not get there: {info:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Downloads to `name` in the world's dir until done; returns the output file.
    pub(crate) async fn download_file(&mut self, order_id: &[u8], bundle_id: &[u8], name: &str) -> std::path::PathBuf {
        let output = self.dir.path().join(name);
        let mut progress = self
            .consumer
            .download(DownloadRequest {
                order_id: order_id.to_vec(),
                bundle_id: bundle_id.to_vec(),
                output_path: output.display().to_string(),
            })
            .await
            .unwrap()
            .into_inner();
        let mut last = None;
        while let Some(message) = progress.message().await.unwrap() {
            last = Some(message);
        }
        assert!(last.unwrap().done);
        output
    }

    /// Downloads to `name` and returns the NDJSON lines as (user, collected_at, payload).
    pub(crate) async fn download(
        &mut self,
        order_id: &[u8],
        bundle_id: &[u8],
        name: &str,
    ) -> BTreeSet<(String, u64, String)> {
        let output = self.download_file(order_id, bundle_id, name).await;
        std::fs::read_to_string(&output)
            .unwrap()
            .lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                (
                    v["user_id"].as_str().unwrap().to_owned(),
                    v["collected_at_ms"].as_u64().unwrap(),
                    v["payload"].to_string(),
                )
            })
            .collect()
    }
}

pub(crate) fn expected(records: &[&IngestRecord]) -> BTreeSet<(String, u64, String)> {
    records
        .iter()
        .map(|r| {
            let payload: serde_json::Value = serde_json::from_str(&r.payload_json).unwrap();
            (B256::from_slice(&r.user_id).to_string(), r.collected_at_ms, payload.to_string())
        })
        .collect()
}
