//! The state tree's reads: jmt's `TreeReader` over the store's columns,
//! with the newest values at the tip answered from [`LatestValues`].

use jmt::storage::{LeafNode, Node, NodeKey, TreeReader};
use jmt::{KeyHash, OwnedValue, Version};
use rocksdb::{Direction, IteratorMode};

use super::*;

impl Store {
    /// Calls `f` with every key of the state as of `version` and its value
    /// then (`None` if it was deleted), in key-hash order.
    pub fn for_each_state_value(
        &self,
        version: Version,
        mut f: impl FnMut(KeyHash, Option<OwnedValue>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut current: Option<(KeyHash, Option<OwnedValue>)> = None;
        for item in self
            .db
            .iterator_cf(self.cf(CF_STATE_VALUES), IteratorMode::Start)
        {
            let (k, v) = item?;
            let (key_hash, value_version) = match <[u8; 40]>::try_from(&k[..]) {
                Ok(k) => {
                    let mut hash = [0u8; 32];
                    hash.copy_from_slice(&k[..32]);
                    let mut ver = [0u8; 8];
                    ver.copy_from_slice(&k[32..]);
                    (KeyHash(hash), u64::from_be_bytes(ver))
                }
                Err(_) => {
                    return Err(StoreError::Corrupt(format!(
                        "state value key 0x{} is not 40 bytes",
                        hex::encode(&k)
                    )))
                }
            };
            if current.as_ref().is_some_and(|(h, _)| *h != key_hash) {
                if let Some((h, value)) = current.take() {
                    f(h, value)?;
                }
            }
            if value_version > version {
                continue;
            }
            let value = encoding::decode::<Option<OwnedValue>>(
                &v,
                crate::state::VALUE_BYTES_CAP + 16,
                "state value",
            )
            .map_err(|e| {
                StoreError::Corrupt(format!("state value {}: {e}", hex::encode(key_hash.0)))
            })?;
            current = Some((key_hash, value));
        }
        if let Some((h, value)) = current {
            f(h, value)?;
        }
        Ok(())
    }

    /// The value of `key_hash` at `max_version`, from the database.
    fn read_value(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let start = value_key(&key_hash, max_version);
        let mut iter = self.db.iterator_cf(
            self.cf(CF_STATE_VALUES),
            IteratorMode::From(&start, Direction::Reverse),
        );
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item?;
                if k.len() != 40 || k[..32] != key_hash.0 {
                    return Ok(None);
                }
                encoding::decode::<Option<OwnedValue>>(
                    &v,
                    crate::state::VALUE_BYTES_CAP + 16,
                    "state value",
                )
                .map_err(|e| anyhow::anyhow!("corrupt state value: {e}"))
            }
        }
    }
}

impl TreeReader for Store {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_STATE_NODES), encode(node_key))?
        {
            None => Ok(None),
            Some(b) => Ok(Some(
                encoding::decode(&b, NODE_BYTES_MAX, "state tree node")
                    .map_err(|e| anyhow::anyhow!("corrupt state tree node: {e}"))?,
            )),
        }
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        if let Some(found) = self
            .latest
            .as_ref()
            .and_then(|l| l.get(max_version, &key_hash))
        {
            return Ok(found);
        }
        let value = self.read_value(max_version, key_hash)?;
        if let Some(latest) = &self.latest {
            latest.remember(max_version, key_hash, value.clone());
        }
        Ok(value)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only used when restoring a tree from a snapshot, which Tally does
        // not do; scanning every node would be the only correct answer.
        anyhow::bail!("restoring the state tree from a snapshot is not supported")
    }
}
