//! Decoding a player's text frame into a [`ClientMessage`], with errors that tell
//! malformed JSON from an unknown type and never quote what the client sent; a chat
//! message's text is checked here (`crate::chat`), so a bad one never leaves the gateway.

use super::{ClientMessage, ErrorCode, REQUEST_ID_BYTES_MAX};

/// Why a client frame could not be turned into a [`ClientMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
}

/// Parses a client text frame, telling malformed JSON apart from an unknown `t`. Error
/// messages never quote the frame (serde's texts do: `invalid type: string "…"`), so a
/// reply is never larger than a few hundred bytes whatever was sent.
pub fn decode_client_message(text: &str) -> Result<ClientMessage, DecodeError> {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(ClientMessage::Chat { text }) => match crate::chat::checked_text(&text) {
            Ok(checked) => Ok(ClientMessage::Chat {
                text: checked.to_owned(),
            }),
            Err(error) => Err(DecodeError {
                code: ErrorCode::InvalidField,
                message: error.to_string(),
            }),
        },
        Ok(message) => validate_request_id(message),
        Err(parse_error) => {
            let code = match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(object)) => match object.get("t") {
                    Some(serde_json::Value::String(t))
                        if !matches!(
                            t.as_str(),
                            "bet" | "cashout" | "cancel" | "chat" | "name" | "ping" | "auth"
                        ) =>
                    {
                        ErrorCode::UnknownType
                    }
                    _ => ErrorCode::BadJson,
                },
                _ => ErrorCode::BadJson,
            };
            Err(DecodeError {
                code,
                message: describe_parse_error(code, &parse_error),
            })
        }
    }
}

/// A parse error in words of our own: where it is, and which field when serde names one
/// of ours (`missing field `amount``); never the client's text.
fn describe_parse_error(code: ErrorCode, error: &serde_json::Error) -> String {
    let at = format!("line {} column {}", error.line(), error.column());
    if code == ErrorCode::UnknownType {
        return "unknown message type; expected bet, cashout, cancel, chat, name, ping or auth"
            .to_owned();
    }
    if error.classify() != serde_json::error::Category::Data {
        return format!("not valid JSON at {at}");
    }
    let serde_text = error.to_string();
    match serde_text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
    {
        Some((field, _)) if field.len() <= FIELD_NAME_BYTES_MAX => {
            format!("missing field {field}")
        }
        _ => format!("a field has the wrong type or value at {at}"),
    }
}

/// Longest field name of a client message (`amount`, `auto`, …) quoted in an error.
const FIELD_NAME_BYTES_MAX: usize = 16;

fn validate_request_id(message: ClientMessage) -> Result<ClientMessage, DecodeError> {
    let request_id = match &message {
        ClientMessage::Bet { req, .. }
        | ClientMessage::Cashout { req, .. }
        | ClientMessage::Cancel { req, .. }
        | ClientMessage::Name { req, .. } => req,
        ClientMessage::Chat { .. } | ClientMessage::Ping | ClientMessage::Auth { .. } => {
            return Ok(message);
        }
    };
    if request_id.is_empty() || request_id.len() > REQUEST_ID_BYTES_MAX {
        return Err(DecodeError {
            code: ErrorCode::InvalidField,
            message: format!("req must be 1 to {REQUEST_ID_BYTES_MAX} bytes"),
        });
    }
    Ok(message)
}
