//! The status channel on Redis: `{p}:status:{processes}`, one pub/sub channel for the
//! whole deployment (a sharded channel in a cluster), whose payload is a status report's
//! bytes as published. Each [`crate::bus::Bus::subscribe_status`] opens its own
//! connection into a ring of [`STATUS_BUFFER_REPORTS_MAX`] reports (the oldest dropped
//! for a slow reader), kept alive (resubscribed after Redis comes back) while read.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use redis::Msg;
use tokio::sync::broadcast;

use super::RedisBus;
use super::connection::{PushSink, keep_alive};
use crate::bus::{BusError, STATUS_BUFFER_REPORTS_MAX, status_reports};

/// The name inside the status channel's hash tag.
const STATUS_CHANNEL_NAME: &str = "processes";

impl RedisBus {
    fn status_channel(&self) -> String {
        self.key("status", STATUS_CHANNEL_NAME)
    }

    pub(super) async fn publish_status_report(&self, report: Bytes) -> Result<(), BusError> {
        // Nobody listening (no console open anywhere) is not an error: pub/sub.
        let _receivers: u64 = redis::cmd(self.publish_command())
            .arg(self.status_channel())
            .arg(&report[..])
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    pub(super) async fn open_status_subscription(
        &self,
    ) -> Result<BoxStream<'static, Bytes>, BusError> {
        let (ring, receiver) = broadcast::channel(STATUS_BUFFER_REPORTS_MAX);
        let sink_ring = ring.clone();
        let sink: PushSink = Arc::new(move |message: Msg| {
            // No reader left: the keepalive below closes the connection soon.
            let _ = sink_ring.send(Bytes::copy_from_slice(message.get_payload_bytes()));
        });
        let connection = self
            .target
            .subscription(&self.status_channel(), sink)
            .await?;
        #[cfg(test)]
        self.status_connections
            .lock()
            .unwrap()
            .push(connection.clone());
        tokio::spawn(async move {
            keep_alive(connection, "status reports", || ring.receiver_count() == 0).await;
        });
        Ok(status_reports(receiver))
    }
}
