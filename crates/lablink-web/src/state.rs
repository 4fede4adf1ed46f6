use lablink_service::Services;

/// What every handler can reach: the use cases (with the database, keys and settings).
#[derive(Clone, Debug)]
pub struct AppState {
    pub services: Services,
}

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState { services }
    }
}
