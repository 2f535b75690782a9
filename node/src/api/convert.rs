//! Conversions between the API's messages and the roles' types, shared by the services (so no
//! service module imports another).

use crate::roles::keeper::ConsentChange;
use airbloc_proto::v1 as pb;
use alloy::primitives::B256;
use tonic::Status;

/// A 32-byte id from the wire, named in the error.
pub(crate) fn id32(bytes: &[u8], what: &str) -> Result<B256, String> {
    B256::try_from(bytes).map_err(|_| format!("{what} must be 32 bytes, got {}", bytes.len()))
}

pub(crate) fn optional_id(bytes: &[u8], what: &str) -> Result<Option<B256>, Status> {
    match bytes.is_empty() {
        true => Ok(None),
        false => id32(bytes, what).map(Some).map_err(Status::invalid_argument),
    }
}

pub(crate) fn action(action: u32) -> Result<u8, Status> {
    u8::try_from(action)
        .ok()
        .filter(|a| *a <= crate::chain::contracts::actions::EXCHANGE)
        .ok_or_else(|| Status::invalid_argument(format!("action {action} is neither 0 (collect) nor 1 (exchange)")))
}

pub(crate) fn consent_changes(changes: &[pb::ConsentChange]) -> Result<Vec<ConsentChange>, Status> {
    changes
        .iter()
        .map(|c| {
            Ok(ConsentChange {
                app: id32(&c.app_id, "app_id").map_err(Status::invalid_argument)?,
                action: action(c.action)?,
                data_type: id32(&c.data_type_id, "data_type_id").map_err(Status::invalid_argument)?,
                allowed: c.allowed,
            })
        })
        .collect()
}

/// Consents with their histories, as the API returns them.
pub(crate) fn consents_to_proto(
    consents: impl Iterator<Item = (B256, u8, B256, crate::chain::state::ConsentRow)>,
) -> pb::ListConsentsResponse {
    pb::ListConsentsResponse {
        consents: consents
            .map(|(app, action, data_type, row)| pb::ConsentState {
                app_id: app.to_vec(),
                action: action.into(),
                data_type_id: data_type.to_vec(),
                allowed: row.history.last().is_some_and(|(_, allowed)| *allowed),
                set_by_user: row.set_by_user,
                history: row
                    .history
                    .iter()
                    .map(|(block, allowed)| pb::ConsentEntry { block: *block, allowed: *allowed })
                    .collect(),
            })
            .collect(),
    }
}
