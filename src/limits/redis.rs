//! The shared counters: the same token buckets and budget ledgers as `bucket.rs`, kept in Redis and
//! changed only by Lua scripts, so a check and its draw are one atomic step across every replica.
//! Every key carries one hash tag, so a Redis Cluster keeps them in one slot (scripts need that).

use std::time::Duration;

use fred::prelude::{Client, ClientLike};
use fred::types::scripts::Script;

use super::{Denied, Draw, LimitError};

/// Refill to now, check every bucket, then draw from all. Returns `{1, level...}` or
/// `{0, index, level}` for the first bucket that cannot give its amount.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local levels = {}
for i = 1, #KEYS do
  local limit, amount = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'level', 'updated')
  local level = limit
  if state[1] then
    level = math.min(limit, tonumber(state[1]) + (now - tonumber(state[2])) * limit / 60000)
  end
  if amount > level then
    return {0, i, tostring(level)}
  end
  levels[i] = level - amount
end
local out = {1}
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], 'level', tostring(levels[i]), 'updated', now)
  redis.call('PEXPIRE', KEYS[i], 120000)
  out[i + 1] = tostring(levels[i])
end
return out
";

/// Adds ARGV's refund (negative: a further charge) to each bucket after refilling it.
const GIVE_BACK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  local limit, refund = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'level', 'updated')
  local level = limit
  if state[1] then
    level = math.min(limit, tonumber(state[1]) + (now - tonumber(state[2])) * limit / 60000)
  end
  redis.call('HSET', KEYS[i], 'level', tostring(math.min(limit, level + refund)), 'updated', now)
  redis.call('PEXPIRE', KEYS[i], 120000)
end
return 1
";

/// Budget ledgers in nano-USD. ARGV per key: budget, amount, spent so far (from SQL, used only when
/// the key is new), seconds to keep the key. Returns `{1}` or `{0, index, spent}`.
const RESERVE: &str = r"
local spent = {}
for i = 1, #KEYS do
  local budget, amount = tonumber(ARGV[4 * i - 3]), tonumber(ARGV[4 * i - 2])
  local current = redis.call('GET', KEYS[i])
  current = current and tonumber(current) or tonumber(ARGV[4 * i - 1])
  if current + amount > budget then
    return {0, i, tostring(current)}
  end
  spent[i] = current
end
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('SET', KEYS[i], tostring(spent[i]), 'EX', ARGV[4 * i])
  end
  redis.call('INCRBY', KEYS[i], ARGV[4 * i - 2])
end
return {1}
";

/// Adds ARGV[1] to a ledger that still exists (one that expired needs no correction).
const ADJUST: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return 0
";

pub struct RedisCounters {
    client: Client,
    prefix: String,
    take: Script,
    give_back: Script,
    reserve: Script,
    adjust: Script,
}

fn unavailable(error: fred::error::Error) -> LimitError {
    LimitError::Unavailable(error.to_string())
}

impl RedisCounters {
    pub fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, LimitError> {
        let client = crate::redis_client::connect(url, timeout, "limits.redis_url").map_err(LimitError::Config)?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            take: Script::from_lua(TAKE),
            give_back: Script::from_lua(GIVE_BACK),
            reserve: Script::from_lua(RESERVE),
            adjust: Script::from_lua(ADJUST),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{{{}}}{name}", self.prefix)
    }

    pub async fn take(&self, draws: &[Draw]) -> Result<Result<Vec<i64>, Denied>, LimitError> {
        let keys: Vec<String> = draws.iter().map(|d| self.key(&d.bucket)).collect();
        let args: Vec<i64> = draws.iter().flat_map(|d| [d.limit, d.amount]).collect();
        let reply: Vec<String> = self.take.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        let number = |s: &String| s.parse::<f64>().unwrap_or(0.0);
        match reply.first().map(String::as_str) {
            Some("1") => Ok(Ok(reply[1..].iter().map(|l| number(l).floor() as i64).collect())),
            Some("0") if reply.len() == 3 => {
                let index = reply[1].parse::<usize>().unwrap_or(1).saturating_sub(1).min(draws.len() - 1);
                Ok(Err(Denied::new(index, &draws[index], number(&reply[2]))))
            }
            _ => Err(LimitError::Unavailable(format!("unexpected reply from the limits script: {reply:?}"))),
        }
    }

    pub async fn give_back(&self, refunds: &[(Draw, i64)]) -> Result<(), LimitError> {
        let keys: Vec<String> = refunds.iter().map(|(d, _)| self.key(&d.bucket)).collect();
        let args: Vec<i64> = refunds.iter().flat_map(|(d, refund)| [d.limit, *refund]).collect();
        let _: i64 = self.give_back.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        Ok(())
    }

    /// Reserves `amount` on each ledger: `(name, budget, amount, spent so far, keep_secs)`.
    /// `Err(index, spent)` names the first ledger the amount does not fit.
    pub async fn reserve(
        &self,
        ledgers: &[(String, i64, i64, i64, i64)],
    ) -> Result<Result<(), (usize, i64)>, LimitError> {
        let keys: Vec<String> = ledgers.iter().map(|l| self.key(&l.0)).collect();
        let args: Vec<i64> = ledgers.iter().flat_map(|l| [l.1, l.2, l.3, l.4]).collect();
        let reply: Vec<String> =
            self.reserve.evalsha_with_reload(&self.client, keys, args).await.map_err(unavailable)?;
        match reply.first().map(String::as_str) {
            Some("1") => Ok(Ok(())),
            Some("0") if reply.len() == 3 => {
                let index = reply[1].parse::<usize>().unwrap_or(1).saturating_sub(1);
                Ok(Err((index, reply[2].parse::<f64>().unwrap_or(0.0) as i64)))
            }
            _ => Err(LimitError::Unavailable(format!("unexpected reply from the budget script: {reply:?}"))),
        }
    }

    /// Adds `delta` nano-USD to a ledger that exists (a settled request's actual minus reserved).
    pub async fn adjust(&self, name: &str, delta: i64) -> Result<(), LimitError> {
        let _: i64 = self
            .adjust
            .evalsha_with_reload(&self.client, vec![self.key(name)], vec![delta])
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }
}
