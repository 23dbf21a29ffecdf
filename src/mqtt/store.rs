//! [`Store`]: the broker's persistent sessions and retained messages in an embedded
//! `redb` database, one file per broker thread.
//!
//! The broker state records what changes as [`StoreOp`]s; the body applies one turn's
//! operations in one write transaction ([`Store::apply`]), whose commit (one fsync) comes
//! before the acknowledgements of that turn leave: group commit. At start,
//! [`Store::load`] hands back what [`BrokerState::restore`] rebuilds.
//!
//! Tables (keys → values; every value starts with the format byte
//! [`FORMAT`](monocoque_proto::mqtt::broker::FORMAT), a session record with
//! [`SESSION_FORMAT`](monocoque_proto::mqtt::broker::SESSION_FORMAT)):
//! - `sessions`: client id → [`SessionRecord`] (with its move stamp; a record of the
//!   previous format, without one, reads as stamp 0)
//! - `subscriptions`: (client id, filter) → [`SubscriptionRecord`]
//! - `messages`: (client id, sequence) → the `PUBLISH` as the MQTT 5.0 codec writes it
//! - `flights`: (client id, sequence) → [`Flight`] (the packet identifier a message was
//!   sent with and whether it was released), so a restart resumes its flow with it
//! - `deadlines`: (client id, sequence) → when the message expires (milliseconds since
//!   the Unix epoch), so a restart does not count its interval again
//! - `received`: (client id, packet id) → format byte (QoS 2 identifiers not yet released)
//! - `retained`: topic → the retained `PUBLISH`
//!
//! [`BrokerState::restore`]: monocoque_proto::mqtt::broker::BrokerState::restore

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use monocoque_proto::mqtt::broker::{
    decode_publish, encode_publish, from_wall_millis, stale_copies, wall_millis, Flight, RecordError, SessionCopy,
    SessionRecord, StoreOp, StoredMessage, StoredSession, SubscriptionRecord, FORMAT,
};
use monocoque_proto::mqtt::Publish;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");
const SUBSCRIPTIONS: TableDefinition<(&[u8], &[u8]), &[u8]> = TableDefinition::new("subscriptions");
const MESSAGES: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("messages");
const RECEIVED: TableDefinition<(&[u8], u16), u8> = TableDefinition::new("received");
const FLIGHTS: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("flights");
const DEADLINES: TableDefinition<(&[u8], u64), u64> = TableDefinition::new("deadlines");
const RETAINED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("retained");

/// Why the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// A store file taken in by another thread's store could not be deleted.
    #[error("cannot delete the store {path} once taken in: {source}")]
    Remove {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// The database file could not be opened (locked by another broker, not a redb
    /// file, corrupt).
    #[error("cannot open the store {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::DatabaseError,
    },
    /// A read or a write of the database failed.
    #[error("the store failed: {0}")]
    Db(#[from] redb::Error),
    /// A record could not be read back (or a message not written).
    #[error("a corrupt record in table {table} for client {client:?}: {source}")]
    Record {
        /// The table.
        table: &'static str,
        /// The client identifier (or topic) it is filed under, lossily decoded.
        client: String,
        /// What is wrong with it.
        #[source]
        source: RecordError,
    },
    /// A record filed under a client whose session is not stored.
    #[error("a record in table {table} belongs to no stored session (client {client:?})")]
    Orphan {
        /// The table.
        table: &'static str,
        /// The client identifier, lossily decoded.
        client: String,
    },
}

/// What the store held at start: the persistent sessions and the retained messages.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The sessions, each with its subscriptions, messages and received identifiers.
    pub sessions: Vec<StoredSession>,
    /// The retained messages.
    pub retained: Vec<Publish>,
}

/// One broker thread's store: a redb database file.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn db(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(e.into())
}

fn record(table: &'static str, key: &[u8]) -> impl FnOnce(RecordError) -> StoreError {
    let client = String::from_utf8_lossy(key).into_owned();
    move |source| StoreError::Record { table, client, source }
}

impl Store {
    /// The file of broker thread `thread` under `dir`: `thread-{thread}.redb` (each
    /// thread owns its sessions, so each has its own database and its own commits).
    pub fn file(dir: &Path, thread: usize) -> PathBuf {
        dir.join(format!("thread-{thread}.redb"))
    }

    /// Opens (or creates) the store of broker thread `thread` under `dir`, creating
    /// the directory if need be.
    pub fn open(dir: &Path, thread: usize) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        Self::open_file(Self::file(dir, thread))
    }

    /// Opens (or creates) the store file `path`.
    fn open_file(path: PathBuf) -> Result<Store, StoreError> {
        let db = Database::create(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        // Every table exists from the start, so that reads never meet a missing one.
        let txn = db.begin_write().map_err(db_err)?;
        {
            txn.open_table(SESSIONS).map_err(db_err)?;
            txn.open_table(SUBSCRIPTIONS).map_err(db_err)?;
            txn.open_table(MESSAGES).map_err(db_err)?;
            txn.open_table(RECEIVED).map_err(db_err)?;
            txn.open_table(RETAINED).map_err(db_err)?;
            txn.open_table(FLIGHTS).map_err(db_err)?;
            txn.open_table(DEADLINES).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(Store { db, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store files under `dir` that no thread of a broker on `threads` threads
    /// owns (`thread-M.redb`, M >= `threads`: left by a run with more threads) and
    /// that thread `thread` takes in ([`absorb`](Self::absorb)): those with
    /// M % `threads` == `thread`.
    pub fn orphans(dir: &Path, threads: usize, thread: usize) -> Vec<PathBuf> {
        Self::files(dir)
            .into_iter()
            .filter(|&(m, _)| m >= threads && m % threads.max(1) == thread)
            .map(|(_, p)| p)
            .collect()
    }

    /// Every store file under `dir` (`thread-M.redb`), with its M, by M.
    fn files(dir: &Path) -> Vec<(usize, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out: Vec<(usize, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name();
                let m: usize = name
                    .to_str()?
                    .strip_prefix("thread-")?
                    .strip_suffix(".redb")?
                    .parse()
                    .ok()?;
                Some((m, e.path()))
            })
            .collect();
        out.sort();
        out
    }

    /// Keeps each stored session once across the store files under `dir`, before any
    /// thread opens its own: a session that moved threads is committed to the new
    /// thread's store before the old one forgets it, so a crash in between leaves it
    /// in both. The copy with the largest [`stamp`](SessionRecord::stamp) (the
    /// newest) stays; each other copy is deleted with its subscriptions, messages,
    /// flights, deadlines and received identifiers, in one transaction per store
    /// ([`stale_copies`] chooses). Files of a run with more threads (orphans, taken
    /// in afterwards by [`absorb`](Self::absorb)) count too, so taking them in never
    /// merges two copies. Returns the copies deleted: file and client.
    pub fn keep_newest(dir: &Path) -> Result<Vec<(PathBuf, Bytes)>, StoreError> {
        let files = Self::files(dir);
        if files.len() < 2 {
            return Ok(Vec::new());
        }
        let mut stores = Vec::with_capacity(files.len());
        let mut copies = Vec::new();
        for (m, path) in files {
            let store = Self::open_file(path)?;
            copies.extend(store.stamps()?.into_iter().map(|(client, stamp)| SessionCopy {
                store: m,
                client,
                stamp,
            }));
            stores.push((m, store));
        }
        let stale = stale_copies(copies);
        let mut deleted = Vec::with_capacity(stale.len());
        for (m, store) in &mut stores {
            let ops: Vec<StoreOp> = stale
                .iter()
                .filter(|c| c.store == *m)
                .map(|c| StoreOp::SessionDropped {
                    client: c.client.clone(),
                })
                .collect();
            store.apply(&ops)?;
            deleted.extend(ops.into_iter().filter_map(|op| match op {
                StoreOp::SessionDropped { client } => Some((store.path.clone(), client)),
                _ => None,
            }));
        }
        Ok(deleted)
    }

    /// Each stored session's client identifier and record stamp.
    pub fn stamps(&self) -> Result<Vec<(Bytes, u64)>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let mut out = Vec::new();
        for row in txn.open_table(SESSIONS).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let client = k.value();
            let record = SessionRecord::decode(v.value()).map_err(record("sessions", client))?;
            out.push((Bytes::copy_from_slice(client), record.stamp));
        }
        Ok(out)
    }

    /// Moves everything the store file `other` holds into this store (one
    /// transaction; its messages renumbered after this store's), then deletes the
    /// file: a broker started with fewer threads than the run that wrote `other` keeps
    /// those sessions rather than ignore them.
    pub fn absorb(&mut self, other: &Path) -> Result<(), StoreError> {
        let loaded = Self::open_file(other.to_path_buf())?.load()?;
        let mut seq = {
            let txn = self.db.begin_read().map_err(db_err)?;
            let messages = txn.open_table(MESSAGES).map_err(db_err)?;
            let mut max = 0;
            for row in messages.iter().map_err(db_err)? {
                max = max.max(row.map_err(db_err)?.0.value().1);
            }
            max
        };
        let mut ops = Vec::new();
        for s in loaded.sessions {
            let client = s.client;
            ops.push(StoreOp::Session {
                client: client.clone(),
                record: s.record,
            });
            for (filter, record) in s.subscriptions {
                ops.push(StoreOp::Subscribed {
                    client: client.clone(),
                    filter,
                    record,
                });
            }
            for m in s.messages {
                seq += 1;
                ops.push(StoreOp::Queued {
                    client: client.clone(),
                    seq,
                    publish: m.publish,
                    expires_at: m.expires_at,
                });
                if let Some(flight) = m.flight {
                    ops.push(StoreOp::InFlight {
                        client: client.clone(),
                        seq,
                        flight,
                    });
                }
            }
            for packet_id in s.received {
                ops.push(StoreOp::Received {
                    client: client.clone(),
                    packet_id,
                });
            }
        }
        ops.extend(loaded.retained.into_iter().map(|publish| StoreOp::Retained { publish }));
        self.apply(&ops)?;
        std::fs::remove_file(other).map_err(|source| StoreError::Remove {
            path: other.to_path_buf(),
            source,
        })?;
        Ok(())
    }

    /// Reads everything back, checking every record: a corrupt one is an error, not
    /// skipped.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let mut sessions: BTreeMap<Vec<u8>, StoredSession> = BTreeMap::new();
        for row in txn.open_table(SESSIONS).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let client = k.value();
            let record = SessionRecord::decode(v.value()).map_err(record("sessions", client))?;
            sessions.insert(
                client.to_vec(),
                StoredSession {
                    client: Bytes::copy_from_slice(client),
                    record,
                    subscriptions: Vec::new(),
                    messages: Vec::new(),
                    received: Vec::new(),
                },
            );
        }
        fn owner<'a>(
            sessions: &'a mut BTreeMap<Vec<u8>, StoredSession>,
            table: &'static str,
            client: &[u8],
        ) -> Result<&'a mut StoredSession, StoreError> {
            sessions.get_mut(client).ok_or_else(|| StoreError::Orphan {
                table,
                client: String::from_utf8_lossy(client).into_owned(),
            })
        }
        for row in txn.open_table(SUBSCRIPTIONS).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let (client, filter) = k.value();
            let sub = SubscriptionRecord::decode(v.value()).map_err(record("subscriptions", client))?;
            owner(&mut sessions, "subscriptions", client)?
                .subscriptions
                .push((Bytes::copy_from_slice(filter), sub));
        }
        let flights = txn.open_table(FLIGHTS).map_err(db_err)?;
        let deadlines = txn.open_table(DEADLINES).map_err(db_err)?;
        for row in txn.open_table(MESSAGES).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let (client, seq) = k.value();
            let publish = decode_publish(v.value()).map_err(record("messages", client))?;
            let flight = match flights.get((client, seq)).map_err(db_err)? {
                Some(f) => Some(Flight::decode(f.value()).map_err(record("flights", client))?),
                None => None,
            };
            let expires_at = deadlines
                .get((client, seq))
                .map_err(db_err)?
                .map(|d| from_wall_millis(d.value()));
            owner(&mut sessions, "messages", client)?.messages.push(StoredMessage {
                seq,
                publish,
                flight,
                expires_at,
            });
        }
        for row in txn.open_table(RECEIVED).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let (client, id) = k.value();
            if v.value() != FORMAT {
                return Err(record("received", client)(RecordError::Format(v.value())));
            }
            owner(&mut sessions, "received", client)?.received.push(id);
        }
        let mut retained = Vec::new();
        for row in txn.open_table(RETAINED).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            retained.push(decode_publish(v.value()).map_err(record("retained", k.value()))?);
        }
        Ok(Loaded {
            sessions: sessions.into_values().collect(),
            retained,
        })
    }

    /// Applies `ops` in order in one write transaction and commits it (durably: redb's
    /// commit syncs the file), so everything they describe survives a crash once this
    /// returns. Nothing to apply, nothing written.
    pub fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut sessions = txn.open_table(SESSIONS).map_err(db_err)?;
            let mut subscriptions = txn.open_table(SUBSCRIPTIONS).map_err(db_err)?;
            let mut messages = txn.open_table(MESSAGES).map_err(db_err)?;
            let mut received = txn.open_table(RECEIVED).map_err(db_err)?;
            let mut retained = txn.open_table(RETAINED).map_err(db_err)?;
            let mut flights = txn.open_table(FLIGHTS).map_err(db_err)?;
            let mut deadlines = txn.open_table(DEADLINES).map_err(db_err)?;
            for op in ops {
                match op {
                    StoreOp::Session { client, record } => {
                        sessions.insert(&client[..], &record.encode()[..]).map_err(db_err)?;
                    }
                    StoreOp::SessionDropped { client } => {
                        let c: &[u8] = client;
                        sessions.remove(c).map_err(db_err)?;
                        subscriptions
                            .retain_in((c, &b""[..]).., |(owner, _), _| owner != c)
                            .map_err(db_err)?;
                        messages
                            .retain_in((c, 0u64)..=(c, u64::MAX), |_, _| false)
                            .map_err(db_err)?;
                        flights
                            .retain_in((c, 0u64)..=(c, u64::MAX), |_, _| false)
                            .map_err(db_err)?;
                        deadlines
                            .retain_in((c, 0u64)..=(c, u64::MAX), |_, _| false)
                            .map_err(db_err)?;
                        received
                            .retain_in((c, 0u16)..=(c, u16::MAX), |_, _| false)
                            .map_err(db_err)?;
                    }
                    StoreOp::Subscribed { client, filter, record } => {
                        subscriptions
                            .insert((&client[..], &filter[..]), &record.encode()[..])
                            .map_err(db_err)?;
                    }
                    StoreOp::Unsubscribed { client, filter } => {
                        subscriptions.remove((&client[..], &filter[..])).map_err(db_err)?;
                    }
                    StoreOp::Queued {
                        client,
                        seq,
                        publish,
                        expires_at,
                    } => {
                        let bytes = encode_publish(publish).map_err(record("messages", client))?;
                        messages.insert((&client[..], *seq), &bytes[..]).map_err(db_err)?;
                        if let Some(at) = expires_at {
                            deadlines
                                .insert((&client[..], *seq), wall_millis(*at))
                                .map_err(db_err)?;
                        }
                    }
                    StoreOp::InFlight { client, seq, flight } => {
                        flights
                            .insert((&client[..], *seq), &flight.encode()[..])
                            .map_err(db_err)?;
                    }
                    StoreOp::Delivered { client, seq } => {
                        messages.remove((&client[..], *seq)).map_err(db_err)?;
                        flights.remove((&client[..], *seq)).map_err(db_err)?;
                        deadlines.remove((&client[..], *seq)).map_err(db_err)?;
                    }
                    StoreOp::Received { client, packet_id } => {
                        received.insert((&client[..], *packet_id), FORMAT).map_err(db_err)?;
                    }
                    StoreOp::Released { client, packet_id } => {
                        received.remove((&client[..], *packet_id)).map_err(db_err)?;
                    }
                    StoreOp::Retained { publish } => {
                        let bytes = encode_publish(publish).map_err(record("retained", &publish.topic))?;
                        retained.insert(&publish.topic[..], &bytes[..]).map_err(db_err)?;
                    }
                    StoreOp::RetainedDeleted { topic } => {
                        retained.remove(&topic[..]).map_err(db_err)?;
                    }
                }
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(())
    }
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    db(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use monocoque_proto::mqtt::{ProtocolVersion, QoS, SubscriptionOptions};

    /// A directory of its own under the system's temporary one, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let path = std::env::temp_dir().join(format!("monocoque-{name}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&path).expect("create the directory");
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Writes a copy of `client`'s session into thread `thread`'s store: record
    /// stamped `stamp`, one subscription, one queued QoS 1 message.
    fn copy(dir: &Path, thread: usize, client: &'static str, stamp: u64, filter: &'static str, payload: &'static str) {
        let client = Bytes::from_static(client.as_bytes());
        let mut store = Store::open(dir, thread).expect("open");
        store
            .apply(&[
                StoreOp::Session {
                    client: client.clone(),
                    record: SessionRecord {
                        version: ProtocolVersion::V5,
                        expiry_interval: 60,
                        expires_at: None,
                        stamp,
                    },
                },
                StoreOp::Subscribed {
                    client: client.clone(),
                    filter: Bytes::from_static(filter.as_bytes()),
                    record: SubscriptionRecord {
                        options: SubscriptionOptions::qos(QoS::AtLeastOnce),
                        id: 0,
                    },
                },
                StoreOp::Queued {
                    client: client.clone(),
                    seq: 1,
                    publish: Publish {
                        dup: false,
                        qos: QoS::AtLeastOnce,
                        retain: false,
                        topic: Bytes::from_static(b"t"),
                        packet_id: 0,
                        properties: Default::default(),
                        payload: Bytes::from_static(payload.as_bytes()),
                    },
                    expires_at: None,
                },
                StoreOp::Received { client, packet_id: 4 },
            ])
            .expect("commit");
    }

    /// A session as a store holds it: stamp, filters, queued payloads, received ids.
    type Held = (u64, Vec<Bytes>, Vec<Bytes>, Vec<u16>);

    /// `client`'s session in a store.
    fn session(store: &Store, client: &str) -> Option<Held> {
        let loaded = store.load().expect("every row reads back and has its session");
        loaded
            .sessions
            .into_iter()
            .find(|s| s.client == client.as_bytes())
            .map(|s| {
                (
                    s.record.stamp,
                    s.subscriptions.into_iter().map(|(f, _)| f).collect(),
                    s.messages.into_iter().map(|m| m.publish.payload).collect(),
                    s.received,
                )
            })
    }

    #[test]
    fn only_the_newest_copy_stays_even_in_a_file_taken_in_later() {
        // "c" is in thread 0's store (stamp 3) and in thread-2.redb (stamp 8), which a
        // broker on 2 threads takes into thread 0's: the newer copy must be what
        // thread 0 ends up with, not a merge of the two. "d" is stored once.
        let dir = Dir::new("keep-newest");
        copy(&dir.0, 0, "c", 3, "old/#", "old");
        copy(&dir.0, 2, "c", 8, "new/#", "new");
        copy(&dir.0, 1, "d", 1, "d/#", "d");
        let deleted = Store::keep_newest(&dir.0).expect("keep the newest");
        assert_eq!(deleted, [(Store::file(&dir.0, 0), Bytes::from_static(b"c"))]);
        // Again: nothing more to do.
        assert_eq!(Store::keep_newest(&dir.0).expect("again"), []);
        let mut store = Store::open(&dir.0, 0).expect("open");
        assert_eq!(session(&store, "c"), None, "gone with its rows");
        for orphan in Store::orphans(&dir.0, 2, 0) {
            store.absorb(&orphan).expect("take the file in");
        }
        assert_eq!(
            session(&store, "c"),
            Some((
                8,
                vec![Bytes::from_static(b"new/#")],
                vec![Bytes::from_static(b"new")],
                vec![4]
            ))
        );
        let other = Store::open(&dir.0, 1).expect("open");
        assert_eq!(
            session(&other, "d").map(|s| s.0),
            Some(1),
            "a single copy is left alone"
        );
    }
}
