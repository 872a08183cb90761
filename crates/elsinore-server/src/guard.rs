//! Server-wide abuse limits: connections per source address, failed
//! authentication per address and per account.
//!
//! Every table here is bounded: connection counts have one entry per address
//! with a live connection, failure tables are capped at
//! [`AbuseLimits::max_tracked`] entries and forget a key once its window passed.

use core::net::IpAddr;
use core::time::Duration;
use std::collections::HashMap;

use elsinore_jid::BareJid;
use elsinore_stream::Instant;

/// Limits that span connections (see `docs/reliability.md`, "Limits").
#[derive(Debug, Clone)]
pub struct AbuseLimits {
    /// Connections open at once from one address (IPv6: one /64); 0 = no limit.
    pub max_connections_per_ip: usize,
    /// Loopback addresses are not counted per address (a reverse proxy or tunnel on the
    /// same host would otherwise put every user behind one address).
    pub exempt_loopback: bool,
    /// Failed authentications (per address or per account, within `auth_window`)
    /// after which every further attempt is delayed; 0 = never.
    pub auth_delay_after: u32,
    /// Failed authentications from one address after which attempts are refused
    /// (`temporary-auth-failure`) until the window passes; 0 = never.
    pub auth_refuse_after_ip: u32,
    /// The same per account (higher: an attacker can make an account's owner wait).
    pub auth_refuse_after_account: u32,
    /// How long failures are remembered (counted from a key's first failure).
    pub auth_window: Duration,
    /// Delay of the first delayed attempt; it doubles with each further failure.
    pub auth_base_delay: Duration,
    /// Largest delay.
    pub auth_max_delay: Duration,
    /// Entries kept in each failure table (addresses, accounts).
    pub max_tracked: usize,
}

impl Default for AbuseLimits {
    fn default() -> Self {
        AbuseLimits {
            max_connections_per_ip: 32,
            exempt_loopback: true,
            auth_delay_after: 3,
            auth_refuse_after_ip: 20,
            auth_refuse_after_account: 50,
            auth_window: Duration::from_secs(15 * 60),
            auth_base_delay: Duration::from_secs(1),
            auth_max_delay: Duration::from_secs(30),
            max_tracked: 10_000,
        }
    }
}

/// A source address as counted: IPv4 whole, IPv6 by its /64 (one host usually has a
/// whole /64, so counting single addresses would not limit it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IpKey {
    V4(u32),
    V6(u64),
}

impl IpKey {
    pub(crate) fn of(ip: IpAddr, limits: &AbuseLimits) -> Option<IpKey> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        if limits.exempt_loopback && ip.is_loopback() {
            return None;
        }
        Some(match ip {
            IpAddr::V4(v4) => IpKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => IpKey::V6((u128::from(v6) >> 64) as u64),
        })
    }
}

/// What to do with an authentication attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthVerdict {
    Proceed,
    /// Check the credentials only after this long.
    Delay(Duration),
    /// Refuse without checking.
    Refuse,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    count: u32,
    since: Instant,
    last: Instant,
}

/// Failure counts per key within a window, at most `cap` keys.
#[derive(Debug)]
struct Failures<K> {
    map: HashMap<K, Entry>,
}

impl<K: core::hash::Hash + Eq + Clone> Failures<K> {
    fn new() -> Self {
        Failures {
            map: HashMap::new(),
        }
    }

    fn count(&self, key: &K, now: Instant, window: Duration) -> u32 {
        match self.map.get(key) {
            Some(e) if now.saturating_since(e.since) < window => e.count,
            _ => 0,
        }
    }

    fn record(&mut self, key: K, now: Instant, window: Duration, cap: usize) {
        if let Some(e) = self.map.get_mut(&key) {
            if now.saturating_since(e.since) >= window {
                *e = Entry {
                    count: 0,
                    since: now,
                    last: now,
                };
            }
            e.count = e.count.saturating_add(1);
            e.last = now;
            return;
        }
        if cap == 0 {
            return;
        }
        if self.map.len() >= cap {
            self.map
                .retain(|_, e| now.saturating_since(e.since) < window);
        }
        if self.map.len() >= cap {
            // Still full of live entries: forget the one idle the longest.
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.map.remove(&k);
            }
        }
        self.map.insert(
            key,
            Entry {
                count: 1,
                since: now,
                last: now,
            },
        );
    }

    fn clear(&mut self, key: &K) {
        self.map.remove(key);
    }
}

/// The server-wide state behind [`AbuseLimits`].
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) limits: AbuseLimits,
    connections: HashMap<IpKey, usize>,
    ip_failures: Failures<IpKey>,
    account_failures: Failures<BareJid>,
}

impl Guard {
    pub(crate) fn new(limits: AbuseLimits) -> Self {
        Guard {
            limits,
            connections: HashMap::new(),
            ip_failures: Failures::new(),
            account_failures: Failures::new(),
        }
    }

    /// A connection from `ip` opens: `false` when it is over the per-address limit
    /// (then it is not counted).
    pub(crate) fn connection_opened(&mut self, ip: IpKey) -> bool {
        let n = self.connections.entry(ip).or_insert(0);
        if self.limits.max_connections_per_ip != 0 && *n >= self.limits.max_connections_per_ip {
            if *n == 0 {
                self.connections.remove(&ip);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// A connection counted by [`Guard::connection_opened`] closed.
    pub(crate) fn connection_closed(&mut self, ip: IpKey) {
        if let Some(n) = self.connections.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.connections.remove(&ip);
            }
        }
    }

    /// Addresses with live connections (for tests of boundedness).
    pub(crate) fn tracked(&self) -> (usize, usize, usize) {
        (
            self.connections.len(),
            self.ip_failures.map.len(),
            self.account_failures.map.len(),
        )
    }

    /// An attempt to authenticate as `account` from `ip`.
    pub(crate) fn auth_verdict(
        &self,
        ip: Option<IpKey>,
        account: &BareJid,
        now: Instant,
    ) -> AuthVerdict {
        let l = &self.limits;
        let by_ip = ip.map_or(0, |k| self.ip_failures.count(&k, now, l.auth_window));
        let by_account = self.account_failures.count(account, now, l.auth_window);
        let over = |n: u32, limit: u32| limit != 0 && n >= limit;
        if over(by_ip, l.auth_refuse_after_ip) || over(by_account, l.auth_refuse_after_account) {
            return AuthVerdict::Refuse;
        }
        let n = by_ip.max(by_account);
        if !over(n, l.auth_delay_after) {
            return AuthVerdict::Proceed;
        }
        let doublings = (n - l.auth_delay_after).min(16);
        let delay = l
            .auth_base_delay
            .saturating_mul(1 << doublings)
            .min(l.auth_max_delay);
        AuthVerdict::Delay(delay)
    }

    /// An authentication failed (`account`: whom it tried, when known).
    pub(crate) fn auth_failed(
        &mut self,
        ip: Option<IpKey>,
        account: Option<&BareJid>,
        now: Instant,
    ) {
        let (window, cap) = (self.limits.auth_window, self.limits.max_tracked);
        if let Some(ip) = ip {
            self.ip_failures.record(ip, now, window, cap);
        }
        if let Some(a) = account {
            self.account_failures.record(a.clone(), now, window, cap);
        }
    }

    /// The account's owner got in: its failures are forgotten (an address's are not, or
    /// one valid account would reset an attacker's count).
    pub(crate) fn auth_succeeded(&mut self, account: &BareJid) {
        self.account_failures.clear(account);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const T: Instant = Instant::from_millis(1000);

    fn key(s: &str) -> IpKey {
        IpKey::of(s.parse().unwrap(), &AbuseLimits::default()).unwrap()
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        let l = AbuseLimits::default();
        assert_eq!(IpKey::of(IpAddr::V4(Ipv4Addr::LOCALHOST), &l), None);
        assert_eq!(IpKey::of(IpAddr::V6(Ipv6Addr::LOCALHOST), &l), None);
        let strict = AbuseLimits {
            exempt_loopback: false,
            ..l
        };
        assert!(IpKey::of(IpAddr::V4(Ipv4Addr::LOCALHOST), &strict).is_some());
    }

    #[test]
    fn delay_grows_then_refusal_then_the_window_forgets() {
        let mut g = Guard::new(AbuseLimits::default());
        let ip = Some(key("192.0.2.1"));
        let acct = BareJid::parse("hamlet@denmark.lit").unwrap();
        let mut delays = Vec::new();
        for _ in 0..20 {
            delays.push(g.auth_verdict(ip, &acct, T));
            g.auth_failed(ip, Some(&acct), T);
        }
        assert_eq!(delays[..3], [AuthVerdict::Proceed; 3]);
        assert_eq!(delays[3], AuthVerdict::Delay(Duration::from_secs(1)));
        assert_eq!(delays[4], AuthVerdict::Delay(Duration::from_secs(2)));
        assert_eq!(delays[19], AuthVerdict::Delay(Duration::from_secs(30)));
        assert_eq!(g.auth_verdict(ip, &acct, T), AuthVerdict::Refuse);
        // Another address trying the same account is delayed (20 < 50), not refused.
        let other = Some(key("198.51.100.1"));
        assert!(matches!(
            g.auth_verdict(other, &acct, T),
            AuthVerdict::Delay(_)
        ));
        let later = T + Duration::from_secs(15 * 60);
        assert_eq!(g.auth_verdict(ip, &acct, later), AuthVerdict::Proceed);
    }

    #[test]
    fn tables_are_capped() {
        let mut g = Guard::new(AbuseLimits {
            max_tracked: 8,
            ..AbuseLimits::default()
        });
        for i in 0..100u32 {
            let ip = Some(IpKey::V4(i));
            let acct = BareJid::new(Some(&format!("u{i}")), "denmark.lit").unwrap();
            g.auth_failed(ip, Some(&acct), T + Duration::from_millis(u64::from(i)));
        }
        let (_, ips, accounts) = g.tracked();
        assert!(ips <= 8 && accounts <= 8, "{ips} {accounts}");
        // The newest survive.
        assert_eq!(
            g.ip_failures
                .count(&IpKey::V4(99), T, Duration::from_secs(60)),
            1
        );
    }

    #[test]
    fn connection_counts() {
        let mut g = Guard::new(AbuseLimits {
            max_connections_per_ip: 2,
            ..AbuseLimits::default()
        });
        let ip = key("192.0.2.1");
        assert!(g.connection_opened(ip));
        assert!(g.connection_opened(ip));
        assert!(!g.connection_opened(ip));
        assert!(g.connection_opened(key("192.0.2.2")));
        g.connection_closed(ip);
        assert!(g.connection_opened(ip));
        g.connection_closed(ip);
        g.connection_closed(ip);
        g.connection_closed(key("192.0.2.2"));
        assert_eq!(g.tracked().0, 0);
    }
}
