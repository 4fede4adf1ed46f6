use lablink_service::Services;

use crate::client_address::TrustedProxies;

/// What every handler can reach: the use cases (with the database, keys and settings) and how
/// to tell the client's address.
#[derive(Clone, Debug)]
pub struct AppState {
    pub services: Services,
    pub trusted_proxies: TrustedProxies,
}

impl AppState {
    pub fn new(services: Services, trusted_proxies: TrustedProxies) -> AppState {
        AppState {
            services,
            trusted_proxies,
        }
    }
}
