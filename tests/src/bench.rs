//! The benchmark tool's arguments for a short run in a test.

use std::net::SocketAddr;

use wtchat_tools::bench::{BenchArgs, Mode};
use wtchat_tools::dial::Transport;

/// One second of 60 messages/s into a room of 20 on `server`, counting the
/// CPU and memory of `server_pid`; tests change what they need.
pub fn short_bench(server: SocketAddr, transport: Transport, server_pid: Vec<u32>) -> BenchArgs {
    BenchArgs {
        server,
        transport,
        mode: Mode::Run,
        subscribers: 20,
        publishers: 3,
        bytes: 128,
        rate: 60.0,
        duration: 1.0,
        ramp_factor: 1.5,
        ramp_max: 1_000.0,
        connections: 10,
        hold: 0.1,
        join_rate: 1_000.0,
        also_server: Vec::new(),
        server_pid,
        versus: Vec::new(),
        connect_concurrency: 8,
        room: "bench".into(),
        room_size: 0,
        json: None,
        plot: None,
        quiet: true,
    }
}
