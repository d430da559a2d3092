//! `GET /api/v1/firmware`: the stored images and each terminal's rollout progress.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use weir_store::auth::Role;
use weir_store::firmware::{self as store_fw, Image, Target, TargetState};

use super::error::{ApiError, ErrorBody};
use super::{AppState, Caller};

/// The firmware routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(overview))
}

/// One version's rollout: how many terminals are in each state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rollout {
    /// The target version.
    pub version: String,
    /// Terminals targeted.
    pub terminals: usize,
    /// Terminals per state (`offered`, `downloading`, ...), only states with some.
    pub states: std::collections::BTreeMap<&'static str, usize>,
    /// Bytes downloaded over bytes to download, 0 to 1, over the terminals targeted.
    pub progress: f64,
}

/// The answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FirmwareView {
    /// Stored images, newest first.
    pub images: Vec<Image>,
    /// Each version's rollout.
    pub rollouts: Vec<Rollout>,
    /// Each targeted terminal, by id.
    pub targets: Vec<Target>,
}

fn rollouts(targets: &[Target]) -> Vec<Rollout> {
    let mut by_version: std::collections::BTreeMap<&str, Vec<&Target>> = Default::default();
    for t in targets {
        by_version.entry(&t.version).or_default().push(t);
    }
    by_version
        .into_iter()
        .map(|(version, ts)| {
            let mut states = std::collections::BTreeMap::new();
            let (mut done, mut total) = (0u64, 0u64);
            for t in &ts {
                *states.entry(t.state.as_str()).or_insert(0) += 1;
                total += u64::from(t.size);
                done += match t.state {
                    TargetState::Offered => 0,
                    TargetState::Downloading => u64::from(t.offset.min(t.size)),
                    _ => u64::from(t.size),
                };
            }
            Rollout {
                version: version.to_string(),
                terminals: ts.len(),
                states,
                progress: if total == 0 {
                    0.0
                } else {
                    done as f64 / total as f64
                },
            }
        })
        .collect()
}

/// `GET /api/v1/firmware`: images, rollouts, targets. Operators, field staff and admins.
#[utoipa::path(get, path = "/firmware", tag = "firmware",
    responses(
        (status = 200, description = "Stored images, rollouts and each terminal's target", body = FirmwareView),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
    ))]
pub async fn overview(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<FirmwareView>, ApiError> {
    caller.require(&[Role::Operator, Role::Field])?;
    let (images, targets) = state
        .store
        .run(|c| Ok((store_fw::list(c)?, store_fw::targets(c)?)))
        .await?;
    Ok(Json(FirmwareView {
        rollouts: rollouts(&targets),
        images,
        targets,
    }))
}
