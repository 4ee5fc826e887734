//! Request routing: the first route, in order of specificity, whose host
//! and path prefix match names the pool. Exact hosts beat wildcards
//! (`*.example.com`), which beat routes for any host; within each, the
//! longest path prefix wins. Prefixes match on segment boundaries.

use std::sync::Arc;

use super::config::RouteConfig;
use super::limits::TokenBucket;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum HostMatch {
    /// Lower-cased, exact.
    Exact(String),
    /// `.example.com` for `*.example.com`.
    Suffix(String),
    Any,
}

impl HostMatch {
    fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (HostMatch::Any, _) => true,
            (HostMatch::Exact(h), Some(x)) => h.eq_ignore_ascii_case(x),
            (HostMatch::Suffix(s), Some(x)) => {
                x.len() > s.len() && x[x.len() - s.len()..].eq_ignore_ascii_case(s)
            }
            _ => false,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            HostMatch::Exact(_) => 0,
            HostMatch::Suffix(_) => 1,
            HostMatch::Any => 2,
        }
    }
}

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    host: HostMatch,
    path: String,
    /// Index of the route in the operator's list (for metrics and errors).
    pub index: usize,
    pub pool: String,
    pub limiter: Option<Arc<TokenBucket>>,
    pub config: RouteConfig,
}

/// The routes in matching order.
#[derive(Debug, Default)]
pub struct Routes(Vec<Route>);

impl Routes {
    /// Compiles `routes`; a route whose config is unchanged from one in
    /// `old` keeps its rate limiter's state.
    pub fn new(routes: &[RouteConfig], old: Option<&Routes>) -> Routes {
        let mut v: Vec<Route> = routes
            .iter()
            .enumerate()
            .map(|(index, c)| {
                let host = match c.host.as_deref() {
                    None | Some("*") => HostMatch::Any,
                    Some(h) => match h.strip_prefix('*') {
                        Some(suffix) => HostMatch::Suffix(suffix.to_ascii_lowercase()),
                        None => HostMatch::Exact(h.to_ascii_lowercase()),
                    },
                };
                let limiter = old
                    .and_then(|o| o.0.iter().find(|r| r.config == *c))
                    .and_then(|r| r.limiter.clone())
                    .or_else(|| {
                        c.rate_limit
                            .as_ref()
                            .map(|rl| Arc::new(TokenBucket::new(rl)))
                    });
                Route {
                    host,
                    path: c.path.trim_end_matches('/').to_string(),
                    index,
                    pool: c.pool.clone(),
                    limiter,
                    config: c.clone(),
                }
            })
            .collect();
        v.sort_by(|a, b| {
            (a.host.rank(), std::cmp::Reverse(a.path.len()), a.index).cmp(&(
                b.host.rank(),
                std::cmp::Reverse(b.path.len()),
                b.index,
            ))
        });
        Routes(v)
    }

    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        self.0.iter().find(|r| {
            r.host.matches(host)
                && path.starts_with(&r.path)
                && matches!(
                    path.as_bytes().get(r.path.len()),
                    None | Some(b'/') | Some(b'?')
                )
        })
    }

    pub fn configs(&self) -> Vec<RouteConfig> {
        let mut v: Vec<&Route> = self.0.iter().collect();
        v.sort_by_key(|r| r.index);
        v.into_iter().map(|r| r.config.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, path: &str, pool: &str) -> RouteConfig {
        RouteConfig {
            host: host.map(String::from),
            path: path.into(),
            pool: pool.into(),
            rate_limit: None,
        }
    }

    #[test]
    fn most_specific_wins() {
        let r = Routes::new(
            &[
                route(None, "/", "default"),
                route(None, "/api", "api"),
                route(Some("*.example.com"), "/", "wild"),
                route(Some("www.example.com"), "/", "www"),
                route(Some("www.example.com"), "/static/", "static"),
            ],
            None,
        );
        let pool = |h: Option<&str>, p: &str| r.find(h, p).map(|r| r.pool.as_str());
        assert_eq!(
            pool(Some("WWW.example.com"), "/static/a.css"),
            Some("static")
        );
        assert_eq!(pool(Some("www.example.com"), "/staticx"), Some("www"));
        assert_eq!(pool(Some("img.example.com"), "/api"), Some("wild"));
        assert_eq!(pool(Some("example.com"), "/api/v1"), Some("api"));
        assert_eq!(pool(Some("example.com"), "/apix"), Some("default"));
        assert_eq!(pool(None, "/"), Some("default"));
    }

    #[test]
    fn no_route_is_none() {
        let r = Routes::new(&[route(Some("a.example"), "/x", "p")], None);
        assert!(r.find(Some("a.example"), "/y").is_none());
        assert!(r.find(None, "/x").is_none());
        assert_eq!(r.configs()[0].pool, "p");
    }
}
