//! `GET /api/v1/events`: Server-Sent Events of readings and statuses (from the live feed)
//! and of alert and incident changes (from the engine).

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, AppState, Caller};
use crate::alerts::engine::AlertEvent;
use crate::live::LiveEvent;
use weir_store::auth::Role;

const EVERYONE: &[Role] = &[Role::Operator, Role::Field, Role::Inspector];

fn event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_default())
}

/// The event stream; it ends when the gateway shuts down.
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(EVERYONE)?;
    let live = state.live.subscribe();
    let changes = state.alerts.subscribe();
    let alerts = state.alerts.clone();
    let stream = futures::stream::unfold(
        // A comment first, so the response (and its headers) leaves at once: the browser's
        // EventSource reports "open" immediately, not at the first reading or keep-alive.
        (
            live,
            changes,
            VecDeque::from([Event::default().comment("connected")]),
            alerts,
        ),
        |(mut live, mut changes, mut queue, alerts)| async move {
            loop {
                if let Some(ev) = queue.pop_front() {
                    return Some((Ok(ev), (live, changes, queue, alerts)));
                }
                tokio::select! {
                    _ = alerts.stopped() => return None,
                    r = live.recv() => match r {
                        Ok(LiveEvent::Committed { readings, statuses, .. }) => {
                            for r in readings.iter() {
                                queue.push_back(event(
                                    "reading",
                                    &json!({ "terminal": r.terminal.as_str(), "reading": weir_store::readings::Row::of(&r.reading).to_json() }),
                                ));
                            }
                            for (t, s) in statuses.iter() {
                                queue.push_back(event(
                                    "status",
                                    &json!({ "terminal": t.as_str(), "status": s }),
                                ));
                            }
                        }
                        // A slow client misses some readings, not the connection.
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    },
                    c = changes.recv() => match c {
                        Ok(AlertEvent::Alert(a)) => queue.push_back(event("alert", &a)),
                        Ok(AlertEvent::Incident(i)) => queue.push_back(event("incident", &i)),
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    },
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
