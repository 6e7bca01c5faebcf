//! Native tools that speak the wtchat protocol as clients: `wtchat chat`, a
//! terminal client, and `wtchat bench`, the load generator behind
//! BENCHMARKS.md. Both reach the server over WebSocket or WebTransport
//! through [`dial`].

pub mod bench;
pub mod chat;
pub mod crowd;
pub mod dial;
pub mod load;
pub mod measure;
pub mod plot;
pub mod procstat;
pub mod report;
pub mod versus;
