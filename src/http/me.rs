//! `GET /api/me/bets`: a player's own balance and latest bets (at most
//! `ledger::PLAYER_BETS_MAX`, newest first) with what settled each, for the page's "My
//! bets". The player's token comes as `Authorization: Bearer`, never in the URL.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ShardHttp, api_error};
use crate::admin::player_record;

pub(super) async fn my_bets(State(http): State<ShardHttp>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = bearer else {
        return api_error(
            StatusCode::UNAUTHORIZED,
            "token_required",
            "send the player's token as Authorization: Bearer <token>",
        );
    };
    let player = match http.app.tokens.verify(token) {
        Ok(player) => player,
        Err(error) => {
            return api_error(StatusCode::UNAUTHORIZED, "bad_token", &error.to_string());
        }
    };
    match player_record(http.app.ledger.as_ref(), &player).await {
        Ok(record) => Json(record).into_response(),
        Err(error) => {
            tracing::error!(%error, "my bets: ledger unavailable");
            api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "ledger unavailable",
            )
        }
    }
}
