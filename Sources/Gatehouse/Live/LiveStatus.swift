/// What a WebSocket viewer is told about its camera (PROTOCOL.md §8): `{"type":"status","state":…}`.
enum LiveStatus: String, Sendable, Equatable {
    /// The camera is connected to this gateway and no frame arrived yet (in this lease).
    case waiting
    /// Frames are arriving.
    case streaming
    /// The camera is not connected to this gateway.
    case offline

    /// The text message for viewers.
    var message: String { #"{"type":"status","state":"\#(rawValue)"}"# }
}
