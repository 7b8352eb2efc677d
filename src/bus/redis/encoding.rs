//! What goes over Redis, byte for byte: the live event and reply payloads of the pub/sub
//! channels, and the entries of the event history and command streams (the keys are in
//! the documentation of [`super`]).

use bytes::Bytes;
use redis::streams::StreamId;

use crate::bus::{
    BusError, CommandEnvelope, EventEnvelope, PlayerControl, ReplyEnvelope, ReplyTo, RequestId,
};

/// Version byte that opens every event payload (1 had no epoch).
const EVENT_PAYLOAD_VERSION: u8 = 2;
/// Version, flags, seq and epoch before an event's JSON.
const EVENT_HEADER_BYTES: usize = 18;
/// Length prefix of a reply payload's address.
const REPLY_HEADER_BYTES: usize = 4;

pub(super) fn decode_command_entry(entry: &StreamId) -> Result<CommandEnvelope, BusError> {
    let undecodable = |detail: String| BusError::Undecodable {
        what: "command",
        detail: format!("entry {}: {detail}", entry.id),
    };
    let json: Vec<u8> = entry
        .get("command")
        .ok_or_else(|| undecodable("no command field (deleted entry?)".to_owned()))?;
    serde_json::from_slice(&json).map_err(|error| undecodable(error.to_string()))
}

pub(super) fn decode_event_entry(room: &str, entry: &StreamId) -> Result<EventEnvelope, BusError> {
    let fields = (
        entry.get::<u64>("epoch"),
        entry.get::<u64>("seq"),
        entry.get::<u8>("conflatable"),
        entry.get::<Vec<u8>>("json"),
    );
    let (Some(epoch), Some(seq), Some(conflatable), Some(json)) = fields else {
        return Err(BusError::Undecodable {
            what: "event history entry",
            detail: format!(
                "entry {} of room {room} lacks epoch, seq, conflatable or json",
                entry.id
            ),
        });
    };
    Ok(EventEnvelope {
        room: room.to_owned(),
        epoch,
        seq,
        conflatable: conflatable == 1,
        json: Bytes::from(json),
    })
}

pub(super) fn encode_event_payload(event: &EventEnvelope) -> Vec<u8> {
    let mut payload = Vec::with_capacity(EVENT_HEADER_BYTES + event.json.len());
    payload.push(EVENT_PAYLOAD_VERSION);
    payload.push(u8::from(event.conflatable));
    payload.extend_from_slice(&event.seq.to_be_bytes());
    payload.extend_from_slice(&event.epoch.to_be_bytes());
    payload.extend_from_slice(&event.json);
    payload
}

pub(super) fn decode_event_payload(room: &str, payload: &[u8]) -> Option<EventEnvelope> {
    let (header, json) = payload.split_at_checked(EVENT_HEADER_BYTES)?;
    let [version, flags, numbers @ ..] = header else {
        return None;
    };
    if *version != EVENT_PAYLOAD_VERSION {
        return None;
    }
    let (seq, epoch) = numbers.split_at(8);
    Some(EventEnvelope {
        room: room.to_owned(),
        epoch: u64::from_be_bytes(epoch.try_into().ok()?),
        seq: u64::from_be_bytes(seq.try_into().ok()?),
        conflatable: flags & 1 == 1,
        json: Bytes::copy_from_slice(json),
    })
}

pub(super) fn encode_reply_payload(reply: &ReplyEnvelope) -> Vec<u8> {
    let address = (&reply.to, &reply.answers, &reply.control);
    let to = serde_json::to_vec(&address).expect("an address serializes");
    let to_bytes = u32::try_from(to.len()).expect("an address is far below 4 GiB");
    let mut payload = Vec::with_capacity(REPLY_HEADER_BYTES + to.len() + reply.json.len());
    payload.extend_from_slice(&to_bytes.to_be_bytes());
    payload.extend_from_slice(&to);
    payload.extend_from_slice(&reply.json);
    payload
}

pub(super) fn decode_reply_payload(payload: &[u8]) -> Option<ReplyEnvelope> {
    let (header, rest) = payload.split_at_checked(REPLY_HEADER_BYTES)?;
    let to_bytes = u32::from_be_bytes(header.try_into().ok()?) as usize;
    let (to, json) = rest.split_at_checked(to_bytes)?;
    let (to, answers, control) =
        serde_json::from_slice::<(ReplyTo, Option<RequestId>, Option<PlayerControl>)>(to).ok()?;
    Some(ReplyEnvelope {
        to,
        answers,
        control,
        json: Bytes::copy_from_slice(json),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn payloads_round_trip() {
        let event = EventEnvelope {
            room: "r1".to_owned(),
            epoch: u64::MAX - 2,
            seq: u64::MAX - 1,
            conflatable: true,
            json: Bytes::from_static(b"{\"t\":\"tick\"}"),
        };
        let payload = encode_event_payload(&event);
        assert_eq!(decode_event_payload("r1", &payload), Some(event));
        assert_eq!(decode_event_payload("r1", b"\x02\x00short"), None);
        // A process of the version before epochs: refused, not misread.
        let mut without_epoch = payload;
        without_epoch[0] = 1;
        assert_eq!(decode_event_payload("r1", &without_epoch), None);
        let reply = ReplyEnvelope {
            to: ReplyTo {
                gateway: "gw".to_owned(),
                connection: 9,
                player: "p".to_owned(),
            },
            answers: Some(RequestId {
                kind: crate::bus::RequestKind::Cashout,
                req: "c1".to_owned(),
            }),
            control: None,
            json: Bytes::from_static(b"{\"t\":\"pong\"}"),
        };
        assert_eq!(
            decode_reply_payload(&encode_reply_payload(&reply)),
            Some(reply)
        );
        let ban = ReplyEnvelope {
            to: ReplyTo::every_socket_of("p"),
            answers: None,
            control: Some(PlayerControl::Ban),
            json: Bytes::new(),
        };
        assert_eq!(decode_reply_payload(&encode_reply_payload(&ban)), Some(ban));
        assert_eq!(decode_reply_payload(b"\x00\x00\x00\x09{}"), None);
    }
}
