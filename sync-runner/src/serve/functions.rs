//! The function catalog: every function the Function App declares, how it is triggered and what
//! the handler does with it.
//!
//! The `functions/<name>/function.json` files must match this list exactly (tests check both ways:
//! `tests/serve.rs` posts a host payload for every folder, and `tests/functions.rs` compares the
//! folders and their bindings with it).

/// Name of the timer binding in a timer function's `function.json` (`Data.timer` in invocations).
pub const TIMER_BINDING: &str = "timer";
/// Name of the HTTP trigger binding of the admin functions (`Data.req` in invocations).
pub const HTTP_REQUEST_BINDING: &str = "req";
/// Name of the HTTP output binding of the admin functions (`Outputs.res` in responses).
pub const HTTP_RESPONSE_BINDING: &str = "res";
/// The app setting that holds the sync timer's NCRONTAB schedule (`%SYNC_SCHEDULE%`).
pub const SYNC_SCHEDULE_SETTING: &str = "SYNC_SCHEDULE";
/// The schedule Terraform sets by default: five minutes past every hour, UTC (six fields, with
/// seconds). One timer runs every entity so that the batched change-feed probe keeps an idle
/// hour at one Xledger request.
pub const DEFAULT_SYNC_SCHEDULE: &str = "0 5 * * * *";
/// The HTTP `authLevel` every admin function declares: only the master key passes the host.
pub const ADMIN_AUTH_LEVEL: &str = "admin";

/// How the Functions host triggers a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A `timerTrigger` whose schedule comes from an app setting (`%<setting>%`).
    Timer {
        /// App setting holding the NCRONTAB expression.
        schedule_setting: &'static str,
    },
    /// An `httpTrigger` at `authLevel: admin` with one method and a route under `/api/`.
    AdminHttp {
        /// The only HTTP method the function accepts (upper case).
        method: &'static str,
        /// The route template after `/api/` (never starting with `admin/`, which the host reserves).
        route: &'static str,
    },
}

/// What the handler does when the function is invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// One incremental sync pass over the timer's entities, bounded by the function timeout.
    SyncPass,
    /// Report the sync state of every entity (200).
    Status,
    /// Forget the sync state of the named entities (200); the next pass starts a full sync.
    ResetState,
    /// Delete the named entities' lake files and state (202, continues in the background).
    Wipe,
    /// A full resync of one entity (202, continues in the background).
    Resync,
}

/// One function of the app: its folder name under `functions/`, its trigger and its action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionDef {
    /// The function's name: its folder, and the path the host POSTs invocations to.
    pub name: &'static str,
    /// How the host triggers it.
    pub trigger: Trigger,
    /// What the handler does.
    pub action: Action,
}

/// Every function the app declares.
pub const FUNCTIONS: &[FunctionDef] = &[
    FunctionDef {
        name: "sync_timer",
        trigger: Trigger::Timer { schedule_setting: SYNC_SCHEDULE_SETTING },
        action: Action::SyncPass,
    },
    FunctionDef {
        name: "sync_status",
        trigger: Trigger::AdminHttp { method: "GET", route: "sync/status" },
        action: Action::Status,
    },
    FunctionDef {
        name: "sync_reset_state",
        trigger: Trigger::AdminHttp { method: "POST", route: "sync/reset-state" },
        action: Action::ResetState,
    },
    FunctionDef {
        name: "sync_wipe",
        trigger: Trigger::AdminHttp { method: "POST", route: "sync/wipe" },
        action: Action::Wipe,
    },
    FunctionDef {
        name: "sync_resync",
        trigger: Trigger::AdminHttp { method: "POST", route: "sync/resync/{entity}" },
        action: Action::Resync,
    },
];

/// The catalog entry for a function name, if the app declares it.
pub fn function(name: &str) -> Option<&'static FunctionDef> {
    FUNCTIONS.iter().find(|def| def.name == name)
}
