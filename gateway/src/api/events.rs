//! `GET /api/v1/events`: Server-Sent Events of readings and statuses (from the live feed)
//! and of alert and incident changes (from the engine).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{ApiError, AppState, Caller, ErrorBody};
use crate::alerts::engine::AlertEvent;
use crate::live::LiveEvent;
use weir_store::auth::Role;

const EVERYONE: &[Role] = &[Role::Operator, Role::Field, Role::Inspector];

fn event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_default())
}

/// How often an open stream checks its login again, for logins ended by another process
/// (`weir user delete`, `weir token revoke`); a logout or reset through the API is noticed at
/// once.
const RECHECK: Duration = Duration::from_secs(30);

/// One open stream.
struct Feed {
    live: broadcast::Receiver<LiveEvent>,
    changes: broadcast::Receiver<AlertEvent>,
    logins: broadcast::Receiver<()>,
    recheck: tokio::time::Interval,
    queue: VecDeque<Event>,
    state: AppState,
    headers: HeaderMap,
}

impl Feed {
    /// Whether the stream's login still holds.
    async fn still_allowed(&self) -> bool {
        match super::principal(&self.state, &self.headers).await {
            Ok(Some(_)) => true,
            Ok(None) => {
                self.state
                    .metrics
                    .event_streams_revoked
                    .fetch_add(1, Relaxed);
                false
            }
            // The store failing is no reason to cut an operator off; the next check decides.
            Err(_) => true,
        }
    }
}

/// The event stream; it ends when the gateway shuts down, or when its login ends (logout,
/// password reset, user deleted, token revoked).
#[utoipa::path(get, path = "/events", tag = "alerts",
    responses(
        (status = 200, description = "Server-Sent Events: `reading`, `status`, `alert` and \
            `incident` events, each with a JSON object as its data (docs/api.md, \"Live events\")",
            content_type = "text/event-stream", body = String),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
    ))]
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(EVERYONE)?;
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.reset();
    let feed = Feed {
        live: state.live.subscribe(),
        changes: state.alerts.subscribe(),
        logins: state.logins_changed.subscribe(),
        recheck,
        // A comment first, so the response (and its headers) leaves at once: the browser's
        // EventSource reports "open" immediately, not at the first reading or keep-alive.
        queue: VecDeque::from([Event::default().comment("connected")]),
        state,
        headers,
    };
    let stream = futures::stream::unfold(feed, |mut f| async move {
        loop {
            if let Some(ev) = f.queue.pop_front() {
                return Some((Ok(ev), f));
            }
            let alerts = f.state.alerts.clone();
            tokio::select! {
                _ = alerts.stopped() => return None,
                _ = f.recheck.tick() => {
                    if !f.still_allowed().await {
                        return None;
                    }
                }
                r = f.logins.recv() => {
                    if matches!(r, Err(RecvError::Closed)) || !f.still_allowed().await {
                        return None;
                    }
                }
                r = f.live.recv() => match r {
                    Ok(LiveEvent::Committed { readings, statuses, .. }) => {
                        for r in readings.iter() {
                            f.queue.push_back(event(
                                "reading",
                                &json!({ "terminal": r.terminal.as_str(), "reading": weir_store::readings::Row::of(&r.reading).to_json() }),
                            ));
                        }
                        for (t, s) in statuses.iter() {
                            f.queue.push_back(event(
                                "status",
                                &json!({ "terminal": t.as_str(), "status": s }),
                            ));
                        }
                    }
                    // A slow client misses some readings, not the connection.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
                c = f.changes.recv() => match c {
                    Ok(AlertEvent::Alert(a)) => f.queue.push_back(event("alert", &a)),
                    Ok(AlertEvent::Incident(i)) => f.queue.push_back(event("incident", &i)),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
