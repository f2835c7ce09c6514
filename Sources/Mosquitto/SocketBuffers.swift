import CSocketBuffers

/// User-space buffers for the broker's socket, which libmosquitto reads and writes with plain `read`, `write` and
/// `close`: while ``serving(_:_:)`` runs, the calling thread's calls on that socket go through the buffers
/// (Sources/CSocketBuffers/include/socket_buffers.h tells how; ``NetworkLoop`` why). Used by one thread at a time.
final class SocketBuffers {
    private let buffers: OpaquePointer

    /// 16 KiB in: a pass's PUBACKs, or the start of a larger message (its body is read straight into
    /// libmosquitto's own buffer). 64 KiB out: a pass's publishes; a fuller buffer is written out as it fills.
    /// `closeWaitMilliseconds`: how long closing the socket waits for it to take what is held (the DISCONNECT, to a
    /// broker that reads slowly) and then for the broker to close its end (what it sends meanwhile is read and
    /// dropped: input unread at the close would have the connection reset); after that the rest is dropped, as by a
    /// connection that is lost.
    init(inputCapacity: Int = 16 * 1024, outputCapacity: Int = 64 * 1024, closeWaitMilliseconds: Int32 = 1000) throws(MosquittoError) {
        guard let buffers = socket_buffers_create(inputCapacity, outputCapacity, closeWaitMilliseconds) else {
            throw MosquittoError(code: .other, message: "cannot allocate the MQTT socket's buffers")
        }
        self.buffers = buffers
    }

    deinit { socket_buffers_destroy(buffers) }

    /// Runs `body` with this thread's reads and writes of `socket` going through the buffers. Buffers that served
    /// another socket drop what they held first.
    func serving<Result>(_ socket: Int32, _ body: () -> Result) -> Result {
        socket_buffers_begin(buffers, socket)
        defer { socket_buffers_end() }
        return body()
    }

    /// Runs `body` with `socketpair` failing on this thread: libmosquitto, created (`mosquitto_new`) and started afresh
    /// (`mosquitto_reinitialise`, which makes the pair in 2.0; connecting makes none) so, goes without its socket pair.
    /// It would write a byte to it for every packet queued, to wake a loop of its own that ``NetworkLoop`` replaces (a
    /// failing system call per publish, once the pair was full).
    static func withoutSocketPairs<Result>(_ body: () -> Result) -> Result {
        socket_buffers_refuse_socket_pairs(true)
        defer { socket_buffers_refuse_socket_pairs(false) }
        return body()
    }

    /// Drops what the buffers hold: the connection ended.
    func reset() { socket_buffers_reset(buffers) }

    /// Writes the output to the socket, as much as it takes now. A write that fails for good is reported by the
    /// next buffered read (to libmosquitto, which then ends the connection), and returned here.
    @discardableResult
    func flush() -> Int32 { socket_buffers_flush(buffers) }

    /// Input not yet taken, or a failed write to report: read before waiting for the socket.
    var hasInput: Bool { socket_buffers_has_input(buffers) }

    /// Bytes of input not yet taken.
    var inputLength: Int { socket_buffers_input_length(buffers) }

    /// Output the socket has not taken yet.
    var hasOutput: Bool { socket_buffers_has_output(buffers) }
}
