//! Typed helpers for the common commands: each is [`Client::query`] plus a conversion
//! of the reply into a Rust type. Anything else goes through [`cmd`](super::cmd) and
//! [`Client::query`] / [`Client::query_as`].

use bytes::Bytes;
use monocoque_proto::resp::{Cmd, Connection, ToArg, Value};
use monocoque_proto::Driver;

use super::reply::{ok, pairs, FromReply};
use super::{Client, Error};

/// The options of `SET`, as fields (`SetOptions { ex: Some(60), nx: true, ..Default::default() }`)
/// or built (`SetOptions::default().ex(60).nx()`).
///
/// Conflicting options (`ex` with `px`, `nx` with `xx`, an expiry with `keepttl`) are
/// sent as given; the server answers them with a syntax error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// `EX seconds`: expire after this many seconds.
    pub ex: Option<u64>,
    /// `PX milliseconds`: expire after this many milliseconds.
    pub px: Option<u64>,
    /// `NX`: only set if the key does not exist.
    pub nx: bool,
    /// `XX`: only set if the key exists.
    pub xx: bool,
    /// `KEEPTTL`: keep the key's current time to live.
    pub keepttl: bool,
    /// `GET`: return the previous value.
    pub get: bool,
}

impl SetOptions {
    /// Sets `EX seconds`.
    #[must_use]
    pub fn ex(mut self, seconds: u64) -> Self {
        self.ex = Some(seconds);
        self
    }

    /// Sets `PX milliseconds`.
    #[must_use]
    pub fn px(mut self, millis: u64) -> Self {
        self.px = Some(millis);
        self
    }

    /// Sets `NX`.
    #[must_use]
    pub fn nx(mut self) -> Self {
        self.nx = true;
        self
    }

    /// Sets `XX`.
    #[must_use]
    pub fn xx(mut self) -> Self {
        self.xx = true;
        self
    }

    /// Sets `KEEPTTL`.
    #[must_use]
    pub fn keepttl(mut self) -> Self {
        self.keepttl = true;
        self
    }

    /// Sets `GET`.
    #[must_use]
    pub fn get(mut self) -> Self {
        self.get = true;
        self
    }

    /// Appends the options to a `SET key value` command.
    pub fn apply(&self, mut cmd: Cmd) -> Cmd {
        if let Some(s) = self.ex {
            cmd = cmd.arg("EX").arg(s);
        }
        if let Some(ms) = self.px {
            cmd = cmd.arg("PX").arg(ms);
        }
        if self.nx {
            cmd = cmd.arg("NX");
        }
        if self.xx {
            cmd = cmd.arg("XX");
        }
        if self.keepttl {
            cmd = cmd.arg("KEEPTTL");
        }
        if self.get {
            cmd = cmd.arg("GET");
        }
        cmd
    }
}

/// What a `SET` with options did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOutcome {
    /// The value was written (`+OK`).
    Written,
    /// `NX`/`XX` prevented the write (a null reply).
    NotWritten,
    /// With `GET`: the previous value (`None`: the key did not exist). With `NX`/`XX`
    /// as well, whether the write happened is not reported by the server.
    Previous(Option<Bytes>),
}

impl SetOutcome {
    fn from_reply(value: Value, get: bool) -> Result<Self, Error> {
        if get {
            return Option::<Bytes>::from_reply(value).map(SetOutcome::Previous);
        }
        match Value::from_reply(value)? {
            Value::Null => Ok(SetOutcome::NotWritten),
            other => ok(other).map(|()| SetOutcome::Written),
        }
    }
}

/// Typed helpers.
impl<D: Driver<Connection>> Client<D> {
    /// `GET key`: the value, or `None` if the key does not exist.
    pub fn get<K: ToArg>(&mut self, key: K) -> Result<Option<Bytes>, Error> {
        self.query_as(&Cmd::new("GET").arg(key))
    }

    /// `SET key value`.
    pub fn set<K: ToArg, V: ToArg>(&mut self, key: K, value: V) -> Result<(), Error> {
        ok(self.query(&Cmd::new("SET").arg(key).arg(value))?)
    }

    /// `SET key value [EX|PX ...] [NX|XX] [KEEPTTL] [GET]`.
    pub fn set_with<K: ToArg, V: ToArg>(&mut self, key: K, value: V, options: SetOptions) -> Result<SetOutcome, Error> {
        let cmd = options.apply(Cmd::new("SET").arg(key).arg(value));
        SetOutcome::from_reply(self.query(&cmd)?, options.get)
    }

    /// `DEL key...`: how many keys were removed.
    pub fn del<K: ToArg>(&mut self, keys: &[K]) -> Result<i64, Error> {
        self.query_as(&Cmd::new("DEL").args(keys))
    }

    /// `EXISTS key...`: how many of the keys exist (a key named twice counts twice).
    pub fn exists<K: ToArg>(&mut self, keys: &[K]) -> Result<i64, Error> {
        self.query_as(&Cmd::new("EXISTS").args(keys))
    }

    /// `INCR key`: the value after incrementing.
    pub fn incr<K: ToArg>(&mut self, key: K) -> Result<i64, Error> {
        self.query_as(&Cmd::new("INCR").arg(key))
    }

    /// `INCRBY key by`: the value after adding `by`.
    pub fn incr_by<K: ToArg>(&mut self, key: K, by: i64) -> Result<i64, Error> {
        self.query_as(&Cmd::new("INCRBY").arg(key).arg(by))
    }

    /// `DECR key`: the value after decrementing.
    pub fn decr<K: ToArg>(&mut self, key: K) -> Result<i64, Error> {
        self.query_as(&Cmd::new("DECR").arg(key))
    }

    /// `DECRBY key by`: the value after subtracting `by`.
    pub fn decr_by<K: ToArg>(&mut self, key: K, by: i64) -> Result<i64, Error> {
        self.query_as(&Cmd::new("DECRBY").arg(key).arg(by))
    }

    /// `MGET key...`: each key's value, `None` where it does not exist.
    pub fn mget<K: ToArg>(&mut self, keys: &[K]) -> Result<Vec<Option<Bytes>>, Error> {
        self.query_as(&Cmd::new("MGET").args(keys))
    }

    /// `MSET key value [key value ...]`.
    pub fn mset<K: ToArg, V: ToArg>(&mut self, pairs: &[(K, V)]) -> Result<(), Error> {
        let mut cmd = Cmd::new("MSET");
        for (k, v) in pairs {
            cmd.push(k);
            cmd.push(v);
        }
        ok(self.query(&cmd)?)
    }

    /// `EXPIRE key seconds`: whether the timeout was set (false: no such key).
    pub fn expire<K: ToArg>(&mut self, key: K, seconds: i64) -> Result<bool, Error> {
        self.query_as(&Cmd::new("EXPIRE").arg(key).arg(seconds))
    }

    /// `TTL key`: seconds to live, `-1` without expiry, `-2` if the key does not exist.
    pub fn ttl<K: ToArg>(&mut self, key: K) -> Result<i64, Error> {
        self.query_as(&Cmd::new("TTL").arg(key))
    }

    /// `HGET key field`.
    pub fn hget<K: ToArg, F: ToArg>(&mut self, key: K, field: F) -> Result<Option<Bytes>, Error> {
        self.query_as(&Cmd::new("HGET").arg(key).arg(field))
    }

    /// `HSET key field value [field value ...]`: how many fields were added (not
    /// counting updated ones).
    pub fn hset<K: ToArg, F: ToArg, V: ToArg>(&mut self, key: K, fields: &[(F, V)]) -> Result<i64, Error> {
        let mut cmd = Cmd::new("HSET").arg(key);
        for (f, v) in fields {
            cmd.push(f);
            cmd.push(v);
        }
        self.query_as(&cmd)
    }

    /// `HGETALL key`: field/value pairs (a RESP3 map or a RESP2 flat array).
    pub fn hgetall<K: ToArg>(&mut self, key: K) -> Result<Vec<(Bytes, Bytes)>, Error> {
        pairs(self.query(&Cmd::new("HGETALL").arg(key))?)
    }

    /// `LPUSH key value...`: the list's length after the push.
    pub fn lpush<K: ToArg, V: ToArg>(&mut self, key: K, values: &[V]) -> Result<i64, Error> {
        self.query_as(&Cmd::new("LPUSH").arg(key).args(values))
    }

    /// `RPUSH key value...`: the list's length after the push.
    pub fn rpush<K: ToArg, V: ToArg>(&mut self, key: K, values: &[V]) -> Result<i64, Error> {
        self.query_as(&Cmd::new("RPUSH").arg(key).args(values))
    }

    /// `LRANGE key start stop` (inclusive, negative from the end).
    pub fn lrange<K: ToArg>(&mut self, key: K, start: i64, stop: i64) -> Result<Vec<Bytes>, Error> {
        self.query_as(&Cmd::new("LRANGE").arg(key).arg(start).arg(stop))
    }

    /// `SADD key member...`: how many members were added.
    pub fn sadd<K: ToArg, M: ToArg>(&mut self, key: K, members: &[M]) -> Result<i64, Error> {
        self.query_as(&Cmd::new("SADD").arg(key).args(members))
    }

    /// `SMEMBERS key` (a RESP3 set or a RESP2 array), in the server's order.
    pub fn smembers<K: ToArg>(&mut self, key: K) -> Result<Vec<Bytes>, Error> {
        self.query_as(&Cmd::new("SMEMBERS").arg(key))
    }

    /// `PUBLISH channel message`: how many subscribers received it.
    pub fn publish<C: ToArg, M: ToArg>(&mut self, channel: C, message: M) -> Result<i64, Error> {
        self.query_as(&Cmd::new("PUBLISH").arg(channel).arg(message))
    }

    /// `PING`: `+PONG` (or `["pong", ""]` in RESP2 subscriber mode).
    pub fn ping(&mut self) -> Result<(), Error> {
        match Value::from_reply(self.query(&Cmd::new("PING"))?)? {
            Value::SimpleString(s) if s.eq_ignore_ascii_case(b"PONG") => Ok(()),
            Value::Array(items)
                if items
                    .first()
                    .and_then(Value::as_bytes)
                    .is_some_and(|s| s.eq_ignore_ascii_case(b"pong")) =>
            {
                Ok(())
            }
            other => Err(Error::unexpected("PONG", other)),
        }
    }

    /// `SELECT db`; later reconnects select `db` too.
    pub fn select(&mut self, db: u32) -> Result<(), Error> {
        ok(self.query(&Cmd::new("SELECT").arg(db))?)?;
        self.set_database(db);
        Ok(())
    }

    /// `FLUSHDB`: deletes every key of the selected database.
    pub fn flushdb(&mut self) -> Result<(), Error> {
        ok(self.query(&Cmd::new("FLUSHDB"))?)
    }

    /// `DBSIZE`: keys in the selected database.
    pub fn dbsize(&mut self) -> Result<i64, Error> {
        self.query_as(&Cmd::new("DBSIZE"))
    }

    /// `CLIENT ID`: this connection's id on the server (for `CLIENT TRACKING ...
    /// REDIRECT`, `CLIENT KILL ID`); it changes on reconnect.
    pub fn client_id(&mut self) -> Result<i64, Error> {
        self.query_as(&Cmd::new("CLIENT").arg("ID"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cmd: &Cmd) -> Vec<String> {
        cmd.arg_bytes()
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn set_options_in_the_servers_order() {
        let base = || Cmd::new("SET").arg("k").arg("v");
        assert_eq!(args(&SetOptions::default().apply(base())), ["SET", "k", "v"]);
        let all = SetOptions::default().ex(10).nx().get();
        assert_eq!(args(&all.apply(base())), ["SET", "k", "v", "EX", "10", "NX", "GET"]);
        let literal = SetOptions {
            px: Some(1500),
            xx: true,
            keepttl: true,
            ..SetOptions::default()
        };
        assert_eq!(
            args(&literal.apply(base())),
            ["SET", "k", "v", "PX", "1500", "XX", "KEEPTTL"]
        );
    }

    #[test]
    fn set_outcomes() {
        let okv = Value::SimpleString("OK".into());
        assert_eq!(SetOutcome::from_reply(okv.clone(), false).unwrap(), SetOutcome::Written);
        assert_eq!(
            SetOutcome::from_reply(Value::Null, false).unwrap(),
            SetOutcome::NotWritten
        );
        assert_eq!(
            SetOutcome::from_reply(Value::Null, true).unwrap(),
            SetOutcome::Previous(None)
        );
        assert_eq!(
            SetOutcome::from_reply(Value::BulkString("old".into()), true).unwrap(),
            SetOutcome::Previous(Some(Bytes::from("old")))
        );
        assert!(SetOutcome::from_reply(Value::Integer(1), false).is_err());
        assert!(
            SetOutcome::from_reply(Value::SimpleError("ERR syntax error".into()), false)
                .unwrap_err()
                .server_error()
                .is_some()
        );
    }
}
