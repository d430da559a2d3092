//! People's actions on an alert (acknowledge, assign, dispatch, arrive, note, resolve): checked
//! against the alert's state, applied and recorded in its history, in one transaction.

use super::*;

/// What a person does to an alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Takes it on.
    Acknowledge {
        /// Optional note.
        note: Option<String>,
    },
    /// Names who handles it.
    Assign {
        /// The person.
        assignee: String,
    },
    /// Sends a crew (the terminal's zone crew if none is named); acknowledges it too.
    Dispatch {
        /// Crew name.
        crew: Option<String>,
    },
    /// The crew is on site.
    Arrive {
        /// Optional note.
        note: Option<String>,
    },
    /// Closes it by hand.
    Resolve {
        /// Required: what was done.
        note: String,
    },
    /// Adds a note.
    Note {
        /// The note.
        note: String,
    },
}

/// Why an action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No such alert.
    #[error("no alert {0}")]
    NotFound(i64),
    /// Not possible in the alert's state.
    #[error("{0}")]
    Conflict(String),
    /// The request is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The gateway failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// An action for the engine, with where to send the answer.
#[derive(Debug)]
pub struct Command {
    /// Alert id.
    pub id: i64,
    /// What to do.
    pub action: Action,
    /// Who does it.
    pub who: String,
    /// The updated alert, or why not.
    pub reply: oneshot::Sender<Result<Alert, ActionError>>,
}

impl Engine {
    /// Applies a person's action.
    pub async fn act(&mut self, id: i64, action: Action, who: &str) -> Result<Alert, ActionError> {
        let now = self.clock.now();
        let cfg = self.cfg.clone();
        let who = who.to_string();
        let resolving = matches!(action, Action::Resolve { .. });
        let result = self
            .store
            .run(move |c| {
                let tx = rusqlite::Transaction::new_unchecked(
                    c,
                    rusqlite::TransactionBehavior::Immediate,
                )?;
                let Some(mut row) = store::get(&tx, id)? else {
                    return Ok(Err(ActionError::NotFound(id)));
                };
                let was = row.state;
                if let Err(e) = change(&cfg, &mut row, &action, &who, now) {
                    return Ok(Err(e));
                }
                store::save(&tx, &row)?;
                for (what, note) in history(&action, &row, was) {
                    store::record(&tx, id, now, &who, what, note.as_deref())?;
                }
                tx.commit()?;
                Ok(Ok(row))
            })
            .await?;
        let row = result?;
        if resolving {
            self.resolved(&row, now).await?;
            if let Some(term) = self.terms.get_mut(&row.terminal) {
                match row.rule {
                    Rule::Offline => {
                        if let Some(o) = &mut term.offline {
                            // Still silent? It will be offline again after a full period.
                            *o = Offline::new(now, false);
                        }
                    }
                    Rule::DataGap => term.gaps.force(false),
                    rule => term.rules.force(rule, false),
                }
                term.dirty = true;
            }
            self.apply(Vec::new(), now, false).await?;
        } else if let Some(a) = self.active.get_mut(&(row.terminal.clone(), row.rule)) {
            a.state = row.state;
            if row.state != AlertState::Open {
                a.escalate_at = None;
            }
        }
        self.emit(&row, now);
        Ok(self.view(&row, now))
    }
}

/// Checks and applies `action` to `row`.
fn change(
    cfg: &AlertsConfig,
    row: &mut AlertRow,
    action: &Action,
    who: &str,
    now: i64,
) -> Result<(), ActionError> {
    let resolved = || {
        ActionError::Conflict(format!(
            "alert {} is resolved{}",
            row.id,
            row.resolved_by
                .as_deref()
                .map(|b| format!(" (by {b})"))
                .unwrap_or_default()
        ))
    };
    let active = row.state != AlertState::Resolved;
    match action {
        Action::Acknowledge { .. } => {
            if !active {
                return Err(resolved());
            }
            if row.state == AlertState::Acknowledged {
                return Err(ActionError::Conflict(format!(
                    "alert {} was already acknowledged by {}",
                    row.id,
                    row.acknowledged_by.as_deref().unwrap_or("someone")
                )));
            }
            row.state = AlertState::Acknowledged;
            row.acknowledged_at = Some(now);
            row.acknowledged_by = Some(who.into());
        }
        Action::Assign { assignee } => {
            if !active {
                return Err(resolved());
            }
            let assignee = assignee.trim();
            if assignee.is_empty() {
                return Err(ActionError::Invalid("assignee must not be empty".into()));
            }
            row.assignee = Some(assignee.into());
        }
        Action::Dispatch { crew } => {
            if !active {
                return Err(resolved());
            }
            if let Some(c) = &row.crew {
                return Err(ActionError::Conflict(format!(
                    "crew {c} was already dispatched to alert {}",
                    row.id
                )));
            }
            let crew = match crew.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
                Some(c) => c.to_string(),
                None => cfg
                    .crew_of(&row.terminal)
                    .map(|(n, _)| n.to_string())
                    .ok_or_else(|| {
                        ActionError::Invalid(format!(
                            "no crew given, and no crew is responsible for {} ([alerts.crews])",
                            row.terminal
                        ))
                    })?,
            };
            if !cfg.crews.contains_key(&crew) {
                let known: Vec<&str> = cfg.crews.keys().map(String::as_str).collect();
                return Err(ActionError::Invalid(format!(
                    "no crew {crew:?}; the crews are: {}",
                    known.join(", ")
                )));
            }
            row.crew = Some(crew);
            row.dispatched_at = Some(now);
            if row.state == AlertState::Open {
                row.state = AlertState::Acknowledged;
                row.acknowledged_at = Some(now);
                row.acknowledged_by = Some(who.into());
            }
        }
        Action::Arrive { .. } => {
            if !active {
                return Err(resolved());
            }
            if row.crew.is_none() {
                return Err(ActionError::Conflict(format!(
                    "no crew was dispatched to alert {}",
                    row.id
                )));
            }
            if row.arrived_at.is_some() {
                return Err(ActionError::Conflict(format!(
                    "the crew already arrived at alert {}",
                    row.id
                )));
            }
            row.arrived_at = Some(now);
        }
        Action::Resolve { note } => {
            if !active {
                return Err(resolved());
            }
            if note.trim().is_empty() {
                return Err(ActionError::Invalid(
                    "a note saying what was done is required".into(),
                ));
            }
            row.state = AlertState::Resolved;
            row.resolved_at = Some(now);
            row.resolved_by = Some(who.into());
            row.resolution_note = Some(note.trim().into());
        }
        Action::Note { note } => {
            if note.trim().is_empty() {
                return Err(ActionError::Invalid("the note is empty".into()));
            }
        }
    }
    Ok(())
}

/// The history entries `action` leaves on `row`, which was in state `was`.
fn history(
    action: &Action,
    row: &AlertRow,
    was: AlertState,
) -> Vec<(&'static str, Option<String>)> {
    let trim = |n: &Option<String>| {
        n.as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
    };
    match action {
        Action::Acknowledge { note } => vec![("acknowledged", trim(note))],
        Action::Assign { .. } => vec![("assigned", row.assignee.clone())],
        Action::Dispatch { .. } => {
            let mut v = Vec::new();
            if was == AlertState::Open {
                // Dispatching acknowledges.
                v.push(("acknowledged", None));
            }
            v.push(("dispatched", row.crew.clone()));
            v
        }
        Action::Arrive { note } => vec![("arrived", trim(note))],
        Action::Resolve { note } => vec![("resolved", Some(note.trim().to_string()))],
        Action::Note { note } => vec![("note", Some(note.trim().to_string()))],
    }
}
