import GatehouseProtocol
import NIOCore
import NIOHTTP1

/// A WebSocket upgrade that is not a device's: a live viewer (`/v1/live/<dev>`) or the status page's feed.
enum StreamUpgrade: Sendable {
    case viewer(LiveView.Ticket)
    case statusFeed
}

/// An upgraded stream connection, and how to end it at graceful shutdown.
struct StreamConnection: Sendable {
    let channel: any Channel
    let shutDown: @Sendable () -> Void
}

extension Gateway {
    /// Decides an upgrade request for `/v1/live/…` or `/api/status/ws`; nil for every other path (devices). An
    /// admitted viewer holds its slot under `live.max_viewers` until its connection closes.
    func streamUpgrade(_ head: HTTPRequestHead, channel: any Channel) -> Result<StreamUpgrade, Refusal>? {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        if path == StatusFeedHandler.path { return .success(.statusFeed) }
        guard let request = ViewerRequest(webSocketTarget: head.uri, authorization: head.headers.first(name: "Authorization")) else {
            return nil
        }
        let live = self.live
        return live.admit(request).map { ticket in
            channel.closeFuture.whenComplete { _ in live.release() }
            return .viewer(ticket)
        }
    }

    /// Puts the handler of an accepted stream on its upgraded channel (on its event loop).
    func install(_ upgrade: StreamUpgrade, on channel: any Channel) throws -> StreamConnection {
        switch upgrade {
        case .viewer(let ticket):
            let handler = LiveSocketHandler(live: live, ticket: ticket)
            try channel.pipeline.syncOperations.addHandler(handler)
            let bound = NIOLoopBound(handler, eventLoop: channel.eventLoop)
            return StreamConnection(channel: channel) {
                channel.eventLoop.execute { bound.value.end(.shutdown) }
            }
        case .statusFeed:
            let handler = StatusFeedHandler { [self] in statusReport().serialized() }
            try channel.pipeline.syncOperations.addHandler(handler)
            let bound = NIOLoopBound(handler, eventLoop: channel.eventLoop)
            return StreamConnection(channel: channel) {
                channel.eventLoop.execute { bound.value.shutDown(channel: channel) }
            }
        }
    }
}
