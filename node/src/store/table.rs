//! Typed tables: one declaration names a table (its column family), its key type and its value
//! type, and every read and write through it is typed.
//!
//! ```ignore
//! tables! {
//!     /// Accounts this keeper holds, by user id.
//!     pub Accounts(cf::KEEPER_ACCOUNTS): B256 => Account;
//! }
//! let account = store.get_row::<Accounts>(&user)?;
//! ```
//!
//! Tables are declared next to the types they hold (the chain state in `chain::state`, each
//! role's in its module); their column family names are listed in [`super::cf`], where the
//! store creates and checks them.

use super::StoreError;
use alloy::primitives::{Address, B256};

/// A table: a column family with typed keys and values.
pub trait Table: 'static {
    /// The column family.
    const NAME: &'static str;
    type Key: Key;
    type Value: Value;
}

/// How a key is laid out (big-endian binary, so scans are ordered).
pub trait Key: Sized {
    fn to_key(&self) -> Vec<u8>;
    /// `None` when the bytes are not a key of this type.
    fn from_key(bytes: &[u8]) -> Option<Self>;
}

/// How a value is stored: raw bytes for the hot paths, JSON for rows people inspect.
pub trait Value: Sized {
    fn to_value(&self) -> Vec<u8>;
    fn from_value(bytes: &[u8]) -> Result<Self, String>;
}

impl Key for B256 {
    fn to_key(&self) -> Vec<u8> {
        self.to_vec()
    }
    fn from_key(bytes: &[u8]) -> Option<Self> {
        B256::try_from(bytes).ok()
    }
}

impl Key for Address {
    fn to_key(&self) -> Vec<u8> {
        self.to_vec()
    }
    fn from_key(bytes: &[u8]) -> Option<Self> {
        Address::try_from(bytes).ok()
    }
}

impl Key for (B256, B256) {
    fn to_key(&self) -> Vec<u8> {
        [self.0.as_slice(), self.1.as_slice()].concat()
    }
    fn from_key(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == 64).then(|| (B256::from_slice(&bytes[..32]), B256::from_slice(&bytes[32..])))
    }
}

impl Key for u64 {
    fn to_key(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }
    fn from_key(bytes: &[u8]) -> Option<Self> {
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }
}

/// Raw bytes, stored as they are.
impl Value for Vec<u8> {
    fn to_value(&self) -> Vec<u8> {
        self.clone()
    }
    fn from_value(bytes: &[u8]) -> Result<Self, String> {
        Ok(bytes.to_vec())
    }
}

/// 32 raw bytes.
impl Value for B256 {
    fn to_value(&self) -> Vec<u8> {
        self.to_vec()
    }
    fn from_value(bytes: &[u8]) -> Result<Self, String> {
        B256::try_from(bytes).map_err(|_| format!("expected 32 bytes, found {}", bytes.len()))
    }
}

/// Values stored as JSON (small rows, readable with `ldb`).
#[macro_export]
macro_rules! json_values {
    ($($ty:ty),* $(,)?) => {$(
        impl $crate::store::table::Value for $ty {
            fn to_value(&self) -> Vec<u8> {
                serde_json::to_vec(self).expect("store rows always serialize")
            }
            fn from_value(bytes: &[u8]) -> Result<Self, String> {
                serde_json::from_slice(bytes).map_err(|e| e.to_string())
            }
        }
    )*};
}

json_values!(bool, u64);

/// Declares typed tables: `pub Name(cf::COLUMN_FAMILY): Key => Value;`, each with its docs.
#[macro_export]
macro_rules! tables {
    ($($(#[$doc:meta])* $vis:vis $name:ident($cf:expr): $key:ty => $value:ty;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::store::table::Table for $name {
            const NAME: &'static str = $cf;
            type Key = $key;
            type Value = $value;
        }
    )*};
}

pub(super) fn decode_value<T: Table>(key: &[u8], bytes: &[u8]) -> Result<T::Value, StoreError> {
    T::Value::from_value(bytes).map_err(|message| StoreError::Codec { table: T::NAME, key: hex::encode(key), message })
}

pub(super) fn decode_key<T: Table>(key: &[u8]) -> Result<T::Key, StoreError> {
    T::Key::from_key(key).ok_or_else(|| StoreError::Codec {
        table: T::NAME,
        key: hex::encode(key),
        message: "not a key of this table".into(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_in_order() {
        let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
        assert_eq!(<(B256, B256)>::from_key(&(a, b).to_key()), Some((a, b)));
        assert_eq!(<(B256, B256)>::from_key(&[0; 63]), None);
        assert_eq!(u64::from_key(&7u64.to_key()), Some(7));
        assert!(300u64.to_key() > 7u64.to_key(), "big-endian keys scan in numeric order");
        let address = Address::repeat_byte(9);
        assert_eq!(Address::from_key(&address.to_key()), Some(address));
        assert_eq!(B256::from_key(&[1; 31]), None);
    }

    #[test]
    fn values_round_trip_and_name_bad_bytes() {
        let value = B256::repeat_byte(5);
        assert_eq!(B256::from_value(&value.to_value()), Ok(value));
        assert!(B256::from_value(&[0; 3]).unwrap_err().contains("32 bytes"));
        assert_eq!(Vec::<u8>::from_value(&[1, 2, 3]), Ok(vec![1, 2, 3]));
        assert_eq!(u64::from_value(&42u64.to_value()), Ok(42));
        assert!(bool::from_value(b"maybe").is_err());
    }
}
