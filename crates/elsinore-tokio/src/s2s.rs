//! Server-to-server glue: outgoing connections the core asks for.

use elsinore_server::ConnId;

use crate::clock::Clock;
use crate::server::Core;

impl Core {
    /// The core asked for an outgoing s2s connection to `domain`.
    pub(crate) fn connect_s2s(&mut self, conn: ConnId, domain: String, clock: &Clock) {
        tracing::debug!(?conn, %domain, "no server-to-server runtime configured");
        self.server.handle_connect_failed(conn, clock.now());
    }
}
