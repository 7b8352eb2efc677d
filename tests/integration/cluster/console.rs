//! The operator console in cluster mode: logged in on one gateway, its Cluster panel
//! shows the two engines and three gateways from their status reports on Redis, which
//! engine leads the room with the lease's fencing token, and, once the leader is
//! killed, the failover to the standby with its time.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::harness::{Cluster, ENGINES, GATEWAYS, OPERATOR_TOKEN, ROOM};
use super::{FAST_ROUNDS, SERIAL, wait_for_takeover};
use crate::common::{Socket, next_json};

/// Longest wait for the console to show a state: a few status reports, and a takeover
/// (the lease TTL) on a loaded machine.
const CONSOLE_WAIT_MS: u64 = 30_000;

/// The operator socket of the gateway at `addr`, logged in with the cluster's token.
async fn console_socket(addr: std::net::SocketAddr) -> Socket {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/api/operator/session"))
        .json(&json!({"token": OPERATOR_TOKEN, "operator": "cluster-test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    let session = cookie.split(';').next().unwrap().to_owned();
    let mut request = format!("ws://{addr}/api/operator/ws")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", session.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The next `cluster` frame (or the snapshot's cluster) that satisfies `wanted`.
async fn cluster_frame(socket: &mut Socket, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let waiting = async {
        loop {
            let frame = next_json(socket).await;
            let cluster = match frame["t"].as_str() {
                Some("cluster") => frame,
                Some("snapshot") => frame["cluster"].clone(),
                _ => continue,
            };
            if wanted(&cluster) {
                return cluster;
            }
        }
    };
    tokio::time::timeout(Duration::from_millis(CONSOLE_WAIT_MS), waiting)
        .await
        .unwrap_or_else(|_| panic!("the console did not show {what} in time"))
}

fn alive(list: &Value) -> usize {
    (list.as_array().unwrap().iter())
        .filter(|process| process["alive"] == true)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_every_process_who_leads_and_a_failover() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(FAST_ROUNDS).await;
    let leader = cluster.lease_holder().await.expect("a leader");
    let mut socket = console_socket(cluster.gateway_addrs[2]).await;
    let everyone = |c: &Value| {
        alive(&c["engines"]) == ENGINES
            && alive(&c["gateways"]) == GATEWAYS
            && c["rooms"][0]["engine"].is_string()
    };
    let shown = cluster_frame(&mut socket, "every process", everyone).await;
    let room = &shown["rooms"][0];
    assert_eq!(room["room"], ROOM);
    assert_eq!(room["engine"], leader.engine_id.as_str(), "{shown}");
    assert_eq!(room["fencing_token"], leader.fencing_token);

    cluster.kill_engine(cluster.engine_index(&leader.engine_id));
    let standby = wait_for_takeover(&cluster, &leader).await;
    let failed_over = |c: &Value| c["failovers"].as_array().is_some_and(|f| !f.is_empty());
    let shown = cluster_frame(&mut socket, "the failover", failed_over).await;
    let failover = &shown["failovers"][0];
    assert_eq!(failover["room"], ROOM);
    assert_eq!(
        failover["from_engine"],
        leader.engine_id.as_str(),
        "{failover}"
    );
    assert_eq!(failover["to_engine"], standby.engine_id.as_str());
    assert_eq!(failover["to_fencing_token"], standby.fencing_token);
    assert!(
        failover["leaderless_ms"].as_u64().unwrap() > 0,
        "{failover}"
    );
    assert_eq!(shown["rooms"][0]["engine"], standby.engine_id.as_str());
    let gone = |c: &Value| alive(&c["engines"]) == ENGINES - 1;
    cluster_frame(&mut socket, "the killed engine gone", gone).await;
}
